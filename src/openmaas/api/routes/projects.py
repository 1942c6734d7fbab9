"""Projects, partner grants, appointed members and the audit log."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, status

from openmaas.api import convert, schemas
from openmaas.api.deps import CtxDep, DbId, Limit, Offset
from openmaas.domain import projects

router = APIRouter(prefix="/projects", tags=["projects"])


def _out(ctx: CtxDep, project_id: DbId) -> schemas.ProjectOut:
    p = projects.get(ctx, project_id)
    role = projects.role(ctx, project_id)
    return convert.project(p, projects.org_name(ctx, p.org_id), role.name if role else None)


@router.post("", response_model=schemas.ProjectOut, status_code=status.HTTP_201_CREATED)
def create_project(body: schemas.ProjectIn, ctx: CtxDep) -> schemas.ProjectOut:
    """Create a project in an organisation you maintain."""
    p = projects.create(
        ctx,
        body.org,
        body.name,
        visibility=body.visibility,
        description=body.description,
        licence=body.licence,
        citation=body.citation,
    )
    return _out(ctx, p.id)


@router.get("", response_model=schemas.PageOut[schemas.ProjectOut])
def list_projects(
    ctx: CtxDep,
    org: str | None = None,
    name: str | None = None,
    q: str | None = None,
    visibility: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> schemas.PageOut[schemas.ProjectOut]:
    """Projects you can read: public ones and those you have a role on."""
    page = projects.list_projects(
        ctx, org=org, name=name, q=q, visibility=visibility, limit=limit, offset=offset
    )
    return schemas.PageOut(
        items=[convert.project(p, o) for p, o in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/{project_id}", response_model=schemas.ProjectOut)
def get_project(project_id: DbId, ctx: CtxDep) -> schemas.ProjectOut:
    return _out(ctx, project_id)


@router.patch("/{project_id}", response_model=schemas.ProjectOut)
def update_project(project_id: DbId, body: schemas.ProjectPatch, ctx: CtxDep) -> schemas.ProjectOut:
    projects.update(
        ctx,
        project_id,
        description=body.description,
        visibility=body.visibility,
        licence=body.licence,
        citation=body.citation,
    )
    return _out(ctx, project_id)


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_project(project_id: DbId, ctx: CtxDep) -> None:
    projects.delete(ctx, project_id)


@router.post("/{project_id}/transfer", response_model=schemas.ProjectOut)
def transfer_project(project_id: DbId, body: schemas.TransferIn, ctx: CtxDep) -> schemas.ProjectOut:
    projects.transfer(ctx, project_id, body.org)
    return _out(ctx, project_id)


@router.get("/{project_id}/grants", response_model=list[schemas.GrantOut])
def list_grants(project_id: DbId, ctx: CtxDep) -> list[schemas.GrantOut]:
    return [
        schemas.GrantOut(org=o, role=g.role, created_at=g.created_at)
        for g, o in projects.list_grants(ctx, project_id)
    ]


@router.put("/{project_id}/grants/{org}", response_model=schemas.GrantOut)
def set_grant(project_id: DbId, org: str, body: schemas.RoleIn, ctx: CtxDep) -> schemas.GrantOut:
    """Give every member of a partner organisation a role on the project."""
    g = projects.set_grant(ctx, project_id, org, body.role)
    return schemas.GrantOut(org=org, role=g.role, created_at=g.created_at)


@router.delete("/{project_id}/grants/{org}", status_code=status.HTTP_204_NO_CONTENT)
def remove_grant(project_id: DbId, org: str, ctx: CtxDep) -> None:
    projects.remove_grant(ctx, project_id, org)


@router.get("/{project_id}/members", response_model=list[schemas.MemberOut])
def list_members(project_id: DbId, ctx: CtxDep) -> list[schemas.MemberOut]:
    return [
        schemas.MemberOut(username=n, role=m.role)
        for m, n in projects.list_members(ctx, project_id)
    ]


@router.put("/{project_id}/members/{username}", response_model=schemas.MemberOut)
def set_member(
    project_id: DbId, username: str, body: schemas.RoleIn, ctx: CtxDep
) -> schemas.MemberOut:
    """Give one user a role on the project, e.g. appoint a maintainer (owners)."""
    m = projects.set_member(ctx, project_id, username, body.role)
    return schemas.MemberOut(username=username, role=m.role)


@router.delete("/{project_id}/members/{username}", status_code=status.HTTP_204_NO_CONTENT)
def remove_member(project_id: DbId, username: str, ctx: CtxDep) -> None:
    projects.remove_member(ctx, project_id, username)


@router.get("/{project_id}/audit", response_model=schemas.PageOut[schemas.AuditOut])
def audit_log(
    project_id: DbId,
    ctx: CtxDep,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> schemas.PageOut[schemas.AuditOut]:
    """Every change in the project, newest first (maintainers)."""
    page = projects.audit_log(
        ctx, project_id, action=action, actor=actor, since=since, limit=limit, offset=offset
    )
    return schemas.PageOut(
        items=[schemas.AuditOut.model_validate(e) for e in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )
