"""Projects: owned by an organisation, shared with partner organisations.

``authorize`` is how every service that acts inside a project asks the
policy: it loads what the policy needs and calls ``policy.decide``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from openmaas.domain import audit
from openmaas.domain.context import Ctx
from openmaas.domain.names import check_name
from openmaas.domain.pages import Page, check_window, page_of
from openmaas.domain.policy import Action, OrgAccess, ProjectAccess, Role, decide
from openmaas.errors import Conflict, InvalidInput, NotFound
from openmaas.store.metadata.scoped import readable_projects
from openmaas.store.metadata.tables import Organization, Project, ProjectGrant, ProjectMember, User

Visibility = Literal["private", "public"]


def access_of(s: Session, project: Project) -> ProjectAccess:
    grants = s.execute(
        select(ProjectGrant.org_id, ProjectGrant.role).where(ProjectGrant.project_id == project.id)
    ).all()
    members = s.execute(
        select(ProjectMember.user_id, ProjectMember.role).where(
            ProjectMember.project_id == project.id
        )
    ).all()
    return ProjectAccess(
        project_id=project.id,
        org_id=project.org_id,
        public=project.visibility == "public",
        grants={org: Role[r] for org, r in grants},
        members={u: Role[r] for u, r in members},
    )


def authorize(
    ctx: Ctx,
    s: Session,
    project_id: int,
    action: Action,
    *,
    kind: str = "project",
    owner_id: int | None = None,
) -> Project:
    """Load a project and check ``action`` on it (or on a resource of ``kind`` in it)."""
    project = s.get(Project, project_id)
    if project is None:
        raise NotFound(f"{kind} not found")
    decide(ctx.principal, action, access_of(s, project), kind=kind, owner_id=owner_id)
    return project


def _check_visibility(v: str) -> str:
    if v not in ("private", "public"):
        raise InvalidInput(
            f"invalid visibility {v!r}; use 'private' or 'public'", details={"field": "visibility"}
        )
    return v


def _org_by_name(s: Session, ctx: Ctx, org: str) -> Organization:
    row = s.scalar(select(Organization).where(Organization.name == org))
    if row is None or not ctx.principal.authenticated:
        raise NotFound(f"organisation {org!r} not found")
    return row


def create(
    ctx: Ctx,
    org: str,
    name: str,
    *,
    visibility: str = "private",
    description: str = "",
    licence: str | None = None,
    citation: str | None = None,
) -> Project:
    """Organisation maintainers and owners create its projects."""
    check_name(name)
    _check_visibility(visibility)
    try:
        with ctx.store.write() as s:
            o = _org_by_name(s, ctx, org)
            decide(ctx.principal, Action.manage, OrgAccess(o.id), kind="organisation")
            if s.scalar(select(Project.id).where(Project.org_id == o.id, Project.name == name)):
                raise Conflict(f"project {org}/{name} already exists", details={"field": "name"})
            project = Project(
                org_id=o.id,
                name=name,
                visibility=visibility,
                description=description,
                licence=licence,
                citation=citation,
                created_by=ctx.principal.user_id,
            )
            s.add(project)
            s.flush()
            audit.record(
                s,
                ctx.principal,
                "project.create",
                "project",
                project.id,
                project_id=project.id,
                org_id=o.id,
                details={"name": f"{org}/{name}"},
            )
    except IntegrityError as e:
        raise Conflict(f"project {org}/{name} already exists", details={"field": "name"}) from e
    return project


def get(ctx: Ctx, project_id: int) -> Project:
    with ctx.store.read() as s:
        return authorize(ctx, s, project_id, Action.read)


def role(ctx: Ctx, project_id: int) -> Role | None:
    with ctx.store.read() as s:
        project = s.get(Project, project_id)
        if project is None:
            raise NotFound("project not found")
        return decide(ctx.principal, Action.read, access_of(s, project))


def org_name(ctx: Ctx, org_id: int) -> str:
    with ctx.store.read() as s:
        return s.scalar(select(Organization.name).where(Organization.id == org_id)) or ""


def list_projects(
    ctx: Ctx,
    *,
    org: str | None = None,
    name: str | None = None,
    q: str | None = None,
    visibility: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[tuple[Project, str]]:
    """Readable projects with their organisation's name."""
    check_window(limit, offset)
    query = (
        select(Project, Organization.name)
        .join(Organization, Organization.id == Project.org_id)
        .where(readable_projects(ctx.principal))
    )
    if org:
        query = query.where(Organization.name == org)
    if name:
        query = query.where(Project.name == name)
    if q:
        query = query.where(Project.name.contains(q, autoescape=True))
    if visibility:
        query = query.where(Project.visibility == _check_visibility(visibility))
    with ctx.store.read() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = s.execute(
            query.order_by(Organization.name, Project.name).limit(limit).offset(offset)
        ).all()
    return page_of([(p, o) for p, o in rows], total, limit, offset)


def update(
    ctx: Ctx,
    project_id: int,
    *,
    description: str | None = None,
    visibility: str | None = None,
    licence: str | None = None,
    citation: str | None = None,
) -> Project:
    with ctx.store.write() as s:
        project = authorize(ctx, s, project_id, Action.manage)
        changes: dict[str, object] = {}
        if description is not None:
            project.description = changes["description"] = description
        if visibility is not None:
            project.visibility = changes["visibility"] = _check_visibility(visibility)
        if licence is not None:
            project.licence = changes["licence"] = licence
        if citation is not None:
            project.citation = changes["citation"] = citation
        project.updated_at = datetime.now(UTC)
        audit.record(
            s,
            ctx.principal,
            "project.update",
            "project",
            project.id,
            project_id=project.id,
            org_id=project.org_id,
            details=changes,
        )
    return project


def delete(ctx: Ctx, project_id: int) -> None:
    """Owners delete a project with everything in it (blobs go at the next gc)."""
    with ctx.store.write() as s:
        project = authorize(ctx, s, project_id, Action.administer)
        audit.record(
            s,
            ctx.principal,
            "project.delete",
            "project",
            project.id,
            project_id=project.id,
            org_id=project.org_id,
            details={"name": project.name},
        )
        s.delete(project)


def transfer(ctx: Ctx, project_id: int, to_org: str) -> Project:
    """Move a project to another organisation the caller may manage."""
    with ctx.store.write() as s:
        project = authorize(ctx, s, project_id, Action.administer)
        target = _org_by_name(s, ctx, to_org)
        decide(ctx.principal, Action.manage, OrgAccess(target.id), kind="organisation")
        clash = s.scalar(
            select(Project.id).where(Project.org_id == target.id, Project.name == project.name)
        )
        if clash:
            raise Conflict(f"project {to_org}/{project.name} already exists")
        old = project.org_id
        project.org_id = target.id
        s.execute(
            ProjectGrant.__table__.delete().where(
                ProjectGrant.project_id == project.id, ProjectGrant.org_id == target.id
            )
        )
        audit.record(
            s,
            ctx.principal,
            "project.transfer",
            "project",
            project.id,
            project_id=project.id,
            org_id=target.id,
            details={"from_org": old, "to": to_org},
        )
    return project


# Partner grants ---------------------------------------------------------------------


def list_grants(ctx: Ctx, project_id: int) -> list[tuple[ProjectGrant, str]]:
    with ctx.store.read() as s:
        authorize(ctx, s, project_id, Action.read)
        rows = s.execute(
            select(ProjectGrant, Organization.name)
            .join(Organization, Organization.id == ProjectGrant.org_id)
            .where(ProjectGrant.project_id == project_id)
            .order_by(Organization.name)
        ).all()
    return [(g, n) for g, n in rows]


def set_grant(ctx: Ctx, project_id: int, org: str, role_name: str) -> ProjectGrant:
    """Give every member of a partner organisation ``role_name`` (maintainers manage)."""
    role_ = Role.parse(role_name)
    if role_ is Role.owner:
        raise InvalidInput(
            "a partner organisation cannot own the project", details={"field": "role"}
        )
    with ctx.store.write() as s:
        project = authorize(ctx, s, project_id, Action.manage)
        o = _org_by_name(s, ctx, org)
        if o.id == project.org_id:
            raise InvalidInput(
                f"{org!r} owns this project; its members' roles come from the organisation",
                details={"field": "org"},
            )
        g = s.scalar(
            select(ProjectGrant).where(
                ProjectGrant.project_id == project_id, ProjectGrant.org_id == o.id
            )
        )
        if g is None:
            g = ProjectGrant(
                project_id=project_id,
                org_id=o.id,
                role=role_.name,
                created_by=ctx.principal.user_id,
            )
            s.add(g)
        g.role = role_.name
        audit.record(
            s,
            ctx.principal,
            "project.grant.set",
            "project",
            project.id,
            project_id=project.id,
            org_id=project.org_id,
            details={"org": org, "role": role_.name},
        )
    return g


def remove_grant(ctx: Ctx, project_id: int, org: str) -> None:
    with ctx.store.write() as s:
        project = authorize(ctx, s, project_id, Action.manage)
        o = _org_by_name(s, ctx, org)
        g = s.scalar(
            select(ProjectGrant).where(
                ProjectGrant.project_id == project_id, ProjectGrant.org_id == o.id
            )
        )
        if g is None:
            raise NotFound(f"{org!r} has no grant on this project")
        s.delete(g)
        audit.record(
            s,
            ctx.principal,
            "project.grant.remove",
            "project",
            project.id,
            project_id=project.id,
            org_id=project.org_id,
            details={"org": org},
        )


# Direct members (appointed by owners) -----------------------------------------------


def list_members(ctx: Ctx, project_id: int) -> list[tuple[ProjectMember, str]]:
    with ctx.store.read() as s:
        authorize(ctx, s, project_id, Action.read)
        rows = s.execute(
            select(ProjectMember, User.username)
            .join(User, User.id == ProjectMember.user_id)
            .where(ProjectMember.project_id == project_id)
            .order_by(User.username)
        ).all()
    return [(m, n) for m, n in rows]


def set_member(ctx: Ctx, project_id: int, username: str, role_name: str) -> ProjectMember:
    """Owners give a user a role on this project, e.g. appoint a maintainer."""
    role_ = Role.parse(role_name)
    with ctx.store.write() as s:
        project = authorize(ctx, s, project_id, Action.administer)
        user = s.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound(f"user {username!r} not found")
        m = s.scalar(
            select(ProjectMember).where(
                ProjectMember.project_id == project_id, ProjectMember.user_id == user.id
            )
        )
        if m is None:
            m = ProjectMember(
                project_id=project_id,
                user_id=user.id,
                role=role_.name,
                created_by=ctx.principal.user_id,
            )
            s.add(m)
        m.role = role_.name
        audit.record(
            s,
            ctx.principal,
            "project.member.set",
            "project",
            project.id,
            project_id=project.id,
            org_id=project.org_id,
            details={"user": username, "role": role_.name},
        )
    return m


def remove_member(ctx: Ctx, project_id: int, username: str) -> None:
    with ctx.store.write() as s:
        project = authorize(ctx, s, project_id, Action.administer)
        user = s.scalar(select(User).where(User.username == username))
        m = None
        if user is not None:
            m = s.scalar(
                select(ProjectMember).where(
                    ProjectMember.project_id == project_id, ProjectMember.user_id == user.id
                )
            )
        if m is None:
            raise NotFound(f"{username!r} has no role on this project")
        s.delete(m)
        audit.record(
            s,
            ctx.principal,
            "project.member.remove",
            "project",
            project.id,
            project_id=project.id,
            org_id=project.org_id,
            details={"user": username},
        )


def audit_log(ctx: Ctx, project_id: int, **filters: object) -> audit.Page[audit.AuditEvent]:
    """Maintainers read their project's audit log."""
    with ctx.store.read() as s:
        authorize(ctx, s, project_id, Action.audit)
    return audit.list_events(ctx, project_id=project_id, **filters)  # type: ignore[arg-type]
