"""Organisations, memberships and service accounts."""

from __future__ import annotations

from fastapi import APIRouter, status

from openmaas.api import schemas
from openmaas.api.deps import CtxDep, Limit, Offset
from openmaas.domain import orgs

router = APIRouter(prefix="/orgs", tags=["organisations"])


@router.post("", response_model=schemas.OrgOut, status_code=status.HTTP_201_CREATED)
def create_org(body: schemas.OrgIn, ctx: CtxDep) -> schemas.OrgOut:
    """Create an organisation; you become its owner."""
    org = orgs.create(ctx, body.name, display_name=body.display_name, description=body.description)
    return schemas.OrgOut.model_validate(org)


@router.get("", response_model=schemas.PageOut[schemas.OrgOut])
def list_orgs(
    ctx: CtxDep, q: str | None = None, mine: bool = False, limit: Limit = 50, offset: Offset = 0
) -> schemas.PageOut[schemas.OrgOut]:
    page = orgs.list_orgs(ctx, q=q, mine=mine, limit=limit, offset=offset)
    return schemas.PageOut(
        items=[schemas.OrgOut.model_validate(o) for o in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/{org}", response_model=schemas.OrgOut)
def get_org(org: str, ctx: CtxDep) -> schemas.OrgOut:
    return schemas.OrgOut.model_validate(orgs.get(ctx, org))


@router.patch("/{org}", response_model=schemas.OrgOut)
def update_org(org: str, body: schemas.OrgPatch, ctx: CtxDep) -> schemas.OrgOut:
    row = orgs.update(ctx, org, display_name=body.display_name, description=body.description)
    return schemas.OrgOut.model_validate(row)


@router.delete("/{org}", status_code=status.HTTP_204_NO_CONTENT)
def delete_org(org: str, ctx: CtxDep) -> None:
    orgs.delete(ctx, org)


@router.get("/{org}/members", response_model=list[schemas.MemberOut])
def list_members(org: str, ctx: CtxDep) -> list[schemas.MemberOut]:
    return [
        schemas.MemberOut(username=u.username, role=r, is_service=u.is_service)
        for u, r in orgs.list_members(ctx, org)
    ]


@router.put("/{org}/members/{username}", response_model=schemas.MemberOut)
def set_member(org: str, username: str, body: schemas.RoleIn, ctx: CtxDep) -> schemas.MemberOut:
    """Add a member or change their role (organisation owners)."""
    m = orgs.set_member(ctx, org, username, body.role)
    return schemas.MemberOut(username=username, role=m.role)


@router.delete("/{org}/members/{username}", status_code=status.HTTP_204_NO_CONTENT)
def remove_member(org: str, username: str, ctx: CtxDep) -> None:
    orgs.remove_member(ctx, org, username)


@router.post(
    "/{org}/service-accounts", response_model=schemas.MemberOut, status_code=status.HTTP_201_CREATED
)
def create_service_account(
    org: str, body: schemas.ServiceAccountIn, ctx: CtxDep
) -> schemas.MemberOut:
    user = orgs.create_service_account(ctx, org, body.name, body.role, body.description)
    return schemas.MemberOut(username=user.username, role=body.role, is_service=True)


@router.get("/{org}/service-accounts", response_model=list[schemas.MemberOut])
def list_service_accounts(org: str, ctx: CtxDep) -> list[schemas.MemberOut]:
    return [
        schemas.MemberOut(username=u.username, role=r, is_service=True)
        for u, r in orgs.list_service_accounts(ctx, org)
    ]


@router.post(
    "/{org}/service-accounts/{username}/tokens",
    response_model=schemas.NewTokenOut,
    status_code=status.HTTP_201_CREATED,
)
def create_service_token(
    org: str, username: str, body: schemas.TokenIn, ctx: CtxDep
) -> schemas.NewTokenOut:
    """A token for a service account of the organisation (organisation owners)."""
    new = orgs.create_service_token(
        ctx, org, username, body.name, body.scopes, expires_in_days=body.expires_in_days
    )
    return schemas.NewTokenOut(
        token=new.token, **schemas.TokenOut.model_validate(new.row).model_dump()
    )
