"""Query scoping: the SQL form of "which projects can this caller read".

Lists filter with ``readable_projects`` from their first query, so a list can
never contain what ``domain.policy.decide`` would hide. The rule is the same
as the policy's: public, or the caller has a role through their organisation,
a partner grant, or a direct project role (admins read everything). The
authorization-matrix test checks both agree for every route.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import ColumnElement, false, or_, select, true

from openmaas.store.metadata.tables import Project, ProjectGrant, ProjectMember


class Caller(Protocol):
    @property
    def user_id(self) -> int | None: ...
    @property
    def is_admin(self) -> bool: ...
    @property
    def org_ids(self) -> list[int]: ...
    @property
    def scopes(self) -> frozenset[str]: ...


def readable_projects(caller: Caller) -> ColumnElement[bool]:
    """A WHERE clause on ``Project`` true for the projects ``caller`` may read."""
    if "read" not in caller.scopes:
        return false()  # a predict-only token reads nothing, lists included
    if caller.is_admin:
        return true()
    conds: list[ColumnElement[bool]] = [Project.visibility == "public"]
    if caller.org_ids:
        conds.append(Project.org_id.in_(caller.org_ids))
        conds.append(
            Project.id.in_(
                select(ProjectGrant.project_id).where(ProjectGrant.org_id.in_(caller.org_ids))
            )
        )
    if caller.user_id is not None:
        conds.append(
            Project.id.in_(
                select(ProjectMember.project_id).where(ProjectMember.user_id == caller.user_id)
            )
        )
    return or_(*conds)
