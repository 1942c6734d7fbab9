"""Log in, who am I, users and API tokens."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy import select

from openmaas.api import schemas
from openmaas.api.deps import CtxDep, DbId, Limit, Offset
from openmaas.domain import identity
from openmaas.errors import Unauthenticated
from openmaas.store.metadata.tables import Organization

router = APIRouter(tags=["identity"])


@router.post("/auth/login", response_model=schemas.NewTokenOut, status_code=status.HTTP_201_CREATED)
def login(body: schemas.LoginIn, ctx: CtxDep) -> schemas.NewTokenOut:
    """Exchange a username and password for a new API token (every scope)."""
    new = identity.login(ctx, body.username, body.password, token_name=body.token_name)
    return schemas.NewTokenOut(
        token=new.token, **schemas.TokenOut.model_validate(new.row).model_dump()
    )


@router.get("/auth/whoami", response_model=schemas.MeOut)
def whoami(ctx: CtxDep) -> schemas.MeOut:
    p = ctx.principal
    if not p.authenticated:
        raise Unauthenticated("not logged in: send 'Authorization: Bearer <token>'")
    user = identity.get_user(ctx, p.username)
    with ctx.store.read() as s:
        names = (
            dict(s.execute(select(Organization.id, Organization.name)).all()) if p.org_roles else {}
        )
    return schemas.MeOut(
        **schemas.UserOut.model_validate(user).model_dump(),
        orgs={names[o]: r for o, r in p.org_roles.items() if o in names},
        scopes=sorted(p.scopes),
    )


@router.post("/auth/password", status_code=status.HTTP_204_NO_CONTENT)
def change_password(body: schemas.PasswordIn, ctx: CtxDep) -> None:
    identity.set_password(ctx, body.old_password, body.new_password)


@router.post("/users", response_model=schemas.UserOut, status_code=status.HTTP_201_CREATED)
def create_user(body: schemas.UserIn, ctx: CtxDep) -> schemas.UserOut:
    """Platform admins create user accounts."""
    user = identity.create_user(
        ctx,
        body.username,
        body.password,
        email=body.email,
        display_name=body.display_name,
        is_admin=body.is_admin,
    )
    return schemas.UserOut.model_validate(user)


@router.get("/users", response_model=list[schemas.UserOut])
def list_users(ctx: CtxDep, limit: Limit = 50, offset: Offset = 0) -> list[schemas.UserOut]:
    return [schemas.UserOut.model_validate(u) for u in identity.list_users(ctx, limit, offset)]


@router.get("/users/{username}", response_model=schemas.UserOut)
def get_user(username: str, ctx: CtxDep) -> schemas.UserOut:
    return schemas.UserOut.model_validate(identity.get_user(ctx, username))


@router.post("/tokens", response_model=schemas.NewTokenOut, status_code=status.HTTP_201_CREATED)
def create_token(body: schemas.TokenIn, ctx: CtxDep) -> schemas.NewTokenOut:
    """A new token for yourself; the secret is in the answer and never shown again."""
    new = identity.create_token(ctx, body.name, body.scopes, expires_in_days=body.expires_in_days)
    return schemas.NewTokenOut(
        token=new.token, **schemas.TokenOut.model_validate(new.row).model_dump()
    )


@router.get("/tokens", response_model=list[schemas.TokenOut])
def list_tokens(ctx: CtxDep) -> list[schemas.TokenOut]:
    return [schemas.TokenOut.model_validate(t) for t in identity.list_tokens(ctx)]


@router.delete("/tokens/{token_id}", response_model=schemas.TokenOut)
def revoke_token(token_id: DbId, ctx: CtxDep) -> schemas.TokenOut:
    return schemas.TokenOut.model_validate(identity.revoke_token(ctx, token_id))
