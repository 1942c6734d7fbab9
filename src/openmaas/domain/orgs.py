"""Organisations, their memberships and service accounts."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from openmaas.domain import audit
from openmaas.domain.context import Ctx
from openmaas.domain.identity import NewToken, _insert_user, create_token
from openmaas.domain.names import check_name
from openmaas.domain.pages import Page, check_window, page_of
from openmaas.domain.policy import Action, OrgAccess, Role, decide
from openmaas.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unauthenticated
from openmaas.store.metadata.tables import Membership, Organization, Project, User


def _load(s: Session, ctx: Ctx, name: str) -> Organization:
    org = s.scalar(select(Organization).where(Organization.name == name))
    if org is None or not ctx.principal.authenticated:
        raise NotFound(f"organisation {name!r} not found")
    return org


def _require_owner(ctx: Ctx, org: Organization) -> None:
    decide(ctx.principal, Action.administer, OrgAccess(org.id), kind="organisation")


def create(ctx: Ctx, name: str, *, display_name: str = "", description: str = "") -> Organization:
    """Any logged-in user may create an organisation and becomes its owner."""
    p = ctx.principal
    if not p.authenticated:
        raise Unauthenticated("log in to create an organisation")
    if "write" not in p.scopes:
        raise PermissionDenied("this token lacks the 'write' scope")
    check_name(name)
    try:
        with ctx.store.write() as s:
            if s.scalar(select(Organization.id).where(Organization.name == name)):
                raise Conflict(f"organisation {name!r} already exists", details={"field": "name"})
            org = Organization(
                name=name, display_name=display_name, description=description, created_by=p.user_id
            )
            s.add(org)
            s.flush()
            s.add(Membership(org_id=org.id, user_id=p.user_id, role=Role.owner.name))
            audit.record(s, p, "org.create", "organisation", org.name, org_id=org.id)
    except IntegrityError as e:
        raise Conflict(f"organisation {name!r} already exists", details={"field": "name"}) from e
    return org


def get(ctx: Ctx, name: str) -> Organization:
    with ctx.store.read() as s:
        return _load(s, ctx, name)


def list_orgs(
    ctx: Ctx, *, q: str | None = None, mine: bool = False, limit: int = 50, offset: int = 0
) -> Page[Organization]:
    check_window(limit, offset)
    if not ctx.principal.authenticated:
        return page_of([], 0, limit, offset)
    query = select(Organization)
    if q:
        query = query.where(Organization.name.contains(q, autoescape=True))
    if mine:
        query = query.where(Organization.id.in_(ctx.principal.org_ids))
    with ctx.store.read() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = s.scalars(query.order_by(Organization.name).limit(limit).offset(offset)).all()
    return page_of(list(rows), total, limit, offset)


def update(
    ctx: Ctx, name: str, *, display_name: str | None = None, description: str | None = None
) -> Organization:
    with ctx.store.write() as s:
        org = _load(s, ctx, name)
        _require_owner(ctx, org)
        if display_name is not None:
            org.display_name = display_name
        if description is not None:
            org.description = description
        audit.record(s, ctx.principal, "org.update", "organisation", org.name, org_id=org.id)
    return org


def delete(ctx: Ctx, name: str) -> None:
    with ctx.store.write() as s:
        org = _load(s, ctx, name)
        _require_owner(ctx, org)
        if s.scalar(select(func.count()).where(Project.org_id == org.id)):
            raise Conflict(
                f"organisation {name!r} still owns projects: delete or transfer them first"
            )
        audit.record(s, ctx.principal, "org.delete", "organisation", org.name, org_id=org.id)
        s.delete(org)


# Members ----------------------------------------------------------------------------


def list_members(ctx: Ctx, name: str) -> list[tuple[User, str]]:
    with ctx.store.read() as s:
        org = _load(s, ctx, name)
        rows = s.execute(
            select(User, Membership.role)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.org_id == org.id)
            .order_by(User.username)
        ).all()
    return [(u, r) for u, r in rows]


def set_member(ctx: Ctx, name: str, username: str, role: str) -> Membership:
    """Add a user to the organisation or change their role (owners only)."""
    Role.parse(role)
    with ctx.store.write() as s:
        org = _load(s, ctx, name)
        _require_owner(ctx, org)
        user = s.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound(f"user {username!r} not found")
        m = s.scalar(
            select(Membership).where(Membership.org_id == org.id, Membership.user_id == user.id)
        )
        if m is None:
            m = Membership(org_id=org.id, user_id=user.id, role=role)
            s.add(m)
        else:
            if m.role == "owner" and role != "owner":
                _keep_an_owner(s, org, user.id)
            m.role = role
        audit.record(
            s,
            ctx.principal,
            "org.member.set",
            "organisation",
            org.name,
            org_id=org.id,
            details={"user": username, "role": role},
        )
    return m


def remove_member(ctx: Ctx, name: str, username: str) -> None:
    with ctx.store.write() as s:
        org = _load(s, ctx, name)
        user = s.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound(f"user {username!r} not found")
        if user.id != ctx.principal.user_id:  # anyone may leave
            _require_owner(ctx, org)
        m = s.scalar(
            select(Membership).where(Membership.org_id == org.id, Membership.user_id == user.id)
        )
        if m is None:
            raise NotFound(f"{username!r} is not a member of {name!r}")
        if m.role == "owner":
            _keep_an_owner(s, org, user.id)
        s.delete(m)
        audit.record(
            s,
            ctx.principal,
            "org.member.remove",
            "organisation",
            org.name,
            org_id=org.id,
            details={"user": username},
        )


def _keep_an_owner(s: Session, org: Organization, leaving_user_id: int) -> None:
    owners = s.scalar(
        select(func.count()).where(
            Membership.org_id == org.id,
            Membership.role == "owner",
            Membership.user_id != leaving_user_id,
        )
    )
    if not owners:
        raise Conflict(f"organisation {org.name!r} must keep at least one owner")


# Service accounts -------------------------------------------------------------------


def create_service_account(
    ctx: Ctx, name: str, account: str, role: str = "contributor", description: str = ""
) -> User:
    """A non-human member of the organisation that authenticates with tokens only."""
    Role.parse(role)
    if role == "owner":
        raise InvalidInput("a service account cannot be an owner", details={"field": "role"})
    with ctx.store.write() as s:
        org = _load(s, ctx, name)
        _require_owner(ctx, org)
        user = _insert_user(
            ctx,
            f"{org.name}.{check_name(account, 'account')}"[:64],
            None,
            None,
            description,
            False,
            service_org_id=org.id,
            session=s,
        )
        s.add(Membership(org_id=org.id, user_id=user.id, role=role))
        audit.record(
            s,
            ctx.principal,
            "org.service_account.create",
            "user",
            user.id,
            org_id=org.id,
            details={"username": user.username, "role": role},
        )
    return user


def create_service_token(
    ctx: Ctx,
    name: str,
    username: str,
    token_name: str,
    scopes: list[str],
    *,
    expires_in_days: float | None = None,
) -> NewToken:
    """A token for one of the organisation's service accounts (organisation owners)."""
    user = next((u for u, _ in list_service_accounts(ctx, name) if u.username == username), None)
    if user is None:
        raise NotFound(f"service account {username!r} not found in {name!r}")
    return create_token(ctx, token_name, scopes, expires_in_days=expires_in_days, user_id=user.id)


def list_service_accounts(ctx: Ctx, name: str) -> list[tuple[User, str]]:
    with ctx.store.read() as s:
        org = _load(s, ctx, name)
        _require_owner(ctx, org)
        rows = s.execute(
            select(User, Membership.role)
            .join(Membership, Membership.user_id == User.id)
            .where(User.service_org_id == org.id, Membership.org_id == org.id)
            .order_by(User.username)
        ).all()
    return [(u, r) for u, r in rows]
