"""The one access policy. Every access decision in OpenMaaS is made by ``decide``.

A caller's role on a project is the highest of:
  - their role in the organisation that owns the project;
  - the role granted to a partner organisation they belong to;
  - a role given to them directly on the project (e.g. an appointed maintainer);
  - ``owner`` for platform admins.
Public projects are readable by everyone, anonymous callers included.

What callers cannot read does not exist for them: ``decide`` raises
``NotFound`` (never ``PermissionDenied``) so ids and names of private resources
do not leak. Callers who can see a resource but not change it get 403, or 401
when they are anonymous.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from openmaas.domain.principal import Principal
from openmaas.errors import InvalidInput, NotFound, PermissionDenied, Unauthenticated


class Role(IntEnum):
    viewer = 1
    contributor = 2
    maintainer = 3
    owner = 4

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name]
        except KeyError:
            valid = ", ".join(r.name for r in cls)
            raise InvalidInput(
                f"unknown role {name!r}; valid roles: {valid}", details={"field": "role"}
            ) from None


class Action(StrEnum):
    read = "read"  # see the resource and its content, download datasets
    create = "create"  # add datasets, tasks, runs to a project
    edit = "edit"  # change or delete a resource (own: contributor; any: maintainer)
    manage = "manage"  # project settings, partner grants, deployments
    audit = "audit"  # read the audit log (read-only, but for maintainers)
    administer = "administer"  # delete or transfer a project, appoint maintainers


# The least role each action needs. ``edit`` on one's own resource needs only
# ``contributor``; see ``decide``.
REQUIRED: dict[Action, Role] = {
    Action.read: Role.viewer,
    Action.create: Role.contributor,
    Action.edit: Role.maintainer,
    Action.manage: Role.maintainer,
    Action.audit: Role.maintainer,
    Action.administer: Role.owner,
}


READ_ONLY = frozenset({Action.read, Action.audit})


@dataclass(frozen=True)
class ProjectAccess:
    """What the policy needs to know about a project."""

    project_id: int
    org_id: int
    public: bool
    grants: dict[int, Role] = field(default_factory=dict)  # partner org id -> role
    members: dict[int, Role] = field(default_factory=dict)  # user id -> role


@dataclass(frozen=True)
class OrgAccess:
    org_id: int


def role_on(principal: Principal, target: ProjectAccess | OrgAccess) -> Role | None:
    if principal.is_admin:
        return Role.owner
    roles: list[Role] = []
    org_role = principal.org_roles.get(target.org_id)
    if org_role is not None:
        roles.append(Role[org_role])
    if isinstance(target, ProjectAccess):
        roles.extend(role for org, role in target.grants.items() if org in principal.org_roles)
        if principal.user_id is not None and principal.user_id in target.members:
            roles.append(target.members[principal.user_id])
    return max(roles) if roles else None


def _needs_scope(principal: Principal, scope: str) -> None:
    if scope not in principal.scopes:
        raise PermissionDenied(
            f"this token lacks the {scope!r} scope", details={"required_scope": scope}
        )


def decide(
    principal: Principal,
    action: Action,
    target: ProjectAccess | OrgAccess,
    *,
    kind: str = "project",
    owner_id: int | None = None,
) -> Role | None:
    """Allow ``action`` on ``target`` or raise; returns the caller's role.

    ``kind`` names the resource in messages ("dataset 12 not found");
    ``owner_id`` is the creator of the resource acted on, for ``edit``.
    Organisations are visible to every authenticated caller (their names are
    needed to grant access); their membership is managed by their owners.
    """
    role = role_on(principal, target)
    if isinstance(target, ProjectAccess):
        visible = role is not None or target.public
    else:
        visible = principal.authenticated
    if not visible:
        raise NotFound(f"{kind} not found")
    if action is Action.read:
        _needs_scope(principal, "read")
        return role
    if not principal.authenticated:
        raise Unauthenticated(f"log in to {action.value} this {kind}")
    _needs_scope(principal, "read" if action in READ_ONLY else "write")
    needed = REQUIRED[action]
    if action is Action.edit and owner_id is not None and owner_id == principal.user_id:
        needed = Role.contributor
    if role is None or role < needed:
        have = role.name if role else "no role"
        raise PermissionDenied(
            f"{action.value} on this {kind} needs the {needed.name} role; you have {have}",
            details={"required_role": needed.name, "role": role.name if role else None},
        )
    return role


@dataclass(frozen=True)
class EndpointAccess:
    """What the policy needs to know to let someone call an endpoint."""

    project: ProjectAccess
    audience: str  # "project" | "consumers" | "public"
    consumers: frozenset[int] = frozenset()  # consumer organisation ids


def decide_call(principal: Principal, target: EndpointAccess) -> int | None:
    """Allow a call (predict, feedback) or raise; returns the consumer organisation the
    call counts for (its rate limit applies), or None.

    Callers who may not call a non-public endpoint do not learn it exists (404).
    A token needs the ``predict`` scope; a predict-only token is enough.
    """
    consumer = None
    if target.audience == "consumers":
        consumer = next((o for o in principal.org_roles if o in target.consumers), None)
    invisible = role_on(principal, target.project) is None and consumer is None
    if target.audience != "public" and invisible:
        raise NotFound("endpoint not found")
    if principal.authenticated:
        _needs_scope(principal, "predict")
    return consumer
