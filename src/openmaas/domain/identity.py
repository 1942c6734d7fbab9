"""Users, passwords and API tokens.

Passwords are hashed with argon2 (slow on purpose). API tokens are 256-bit
random strings, so a fast SHA-256 is enough to store them: a token is looked
up by its hash on every request, and argon2 there would cost ~50 ms a call.
A token is shown once, when created.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from openmaas.config import Settings
from openmaas.domain import audit
from openmaas.domain.context import Ctx, Platform
from openmaas.domain.names import check_name
from openmaas.domain.principal import SCOPES, Principal
from openmaas.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unauthenticated
from openmaas.store.metadata.tables import ApiToken, Membership, User

TOKEN_PREFIX = "om_"


@lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)


def hash_password(password: str, settings: Settings) -> str:
    if len(password) < 8:
        raise InvalidInput(
            "password must have at least 8 characters", details={"field": "password"}
        )
    if len(password) > 1024:
        raise InvalidInput("password is too long", details={"field": "password"})
    return _hasher(settings.argon2_time_cost, settings.argon2_memory_kib).hash(password)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _check_scopes(scopes: list[str]) -> list[str]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise InvalidInput(
            f"invalid scopes {unknown or scopes!r}; valid scopes: {', '.join(SCOPES)}",
            details={"field": "scopes"},
        )
    return sorted(set(scopes))


# Users ------------------------------------------------------------------------------


def _require_login(principal: Principal, scope: str = "read") -> None:
    """Logged in, with a token carrying ``scope`` (``write`` for every change)."""
    if not principal.authenticated:
        raise Unauthenticated("log in first")
    if scope not in principal.scopes:
        raise PermissionDenied(
            f"this token lacks the {scope!r} scope", details={"required_scope": scope}
        )


def _require_admin(principal: Principal) -> None:
    _require_login(principal, "write")
    if not principal.is_admin:
        raise PermissionDenied("only platform admins may do this")


def create_user(
    ctx: Ctx,
    username: str,
    password: str | None,
    *,
    email: str | None = None,
    display_name: str = "",
    is_admin: bool = False,
) -> User:
    _require_admin(ctx.principal)
    return _insert_user(ctx, username, password, email, display_name, is_admin)


def _insert_user(
    ctx: Ctx,
    username: str,
    password: str | None,
    email: str | None,
    display_name: str,
    is_admin: bool,
    *,
    service_org_id: int | None = None,
    session: Session | None = None,
) -> User:
    check_name(username, "username")
    user = User(
        username=username,
        email=email,
        display_name=display_name,
        password_hash=hash_password(password, ctx.settings) if password else None,
        is_admin=is_admin,
        is_service=service_org_id is not None,
        service_org_id=service_org_id,
    )

    def add(s: Session) -> None:
        if s.scalar(select(User.id).where(User.username == username)) is not None:
            raise Conflict(f"username {username!r} is taken", details={"field": "username"})
        s.add(user)
        s.flush()
        audit.record(
            s, ctx.principal, "user.create", "user", user.id, details={"username": username}
        )

    if session is not None:
        add(session)
        return user
    try:
        with ctx.store.write() as s:
            add(s)
    except IntegrityError as e:
        raise Conflict(f"username {username!r} is taken", details={"field": "username"}) from e
    return user


def list_users(ctx: Ctx, limit: int = 50, offset: int = 0) -> list[User]:
    if not ctx.principal.authenticated:
        raise Unauthenticated("log in first")
    with ctx.store.read() as s:
        return list(s.scalars(select(User).order_by(User.id).limit(limit).offset(offset)))


def get_user(ctx: Ctx, username: str) -> User:
    if not ctx.principal.authenticated:
        raise Unauthenticated("log in first")
    with ctx.store.read() as s:
        user = s.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"user {username!r} not found")
    return user


def set_password(ctx: Ctx, old_password: str, new_password: str) -> None:
    _require_login(ctx.principal, "write")
    with ctx.store.write() as s:
        user = s.get(User, ctx.principal.user_id)
        if user is None or not _verify(ctx.settings, user, old_password):
            raise PermissionDenied("the current password is wrong")
        user.password_hash = hash_password(new_password, ctx.settings)
        audit.record(s, ctx.principal, "user.password", "user", user.id)


def _verify(settings: Settings, user: User, password: str) -> bool:
    """Check a password; the hash carries its own parameters, so old hashes still verify."""
    if not user.password_hash:
        return False
    try:
        return _hasher(settings.argon2_time_cost, settings.argon2_memory_kib).verify(
            user.password_hash, password
        )
    except (VerificationError, InvalidHashError):
        return False


# Tokens -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NewToken:
    token: str  # the secret, shown once
    row: ApiToken


def _issue(s: Session, user_id: int, name: str, scopes: list[str], days: float | None) -> NewToken:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user_id,
        name=name[:100] or "token",
        prefix=secret[:10],
        token_hash=token_hash(secret),
        scopes=scopes,
        expires_at=_now() + timedelta(days=days) if days else None,
    )
    s.add(row)
    s.flush()
    return NewToken(secret, row)


def login(ctx: Ctx, username: str, password: str, *, token_name: str = "login") -> NewToken:
    """Exchange a password for a new token with every scope."""
    with ctx.store.write() as s:
        user = s.scalar(select(User).where(User.username == username))
        if user is None or user.disabled or not _verify(ctx.settings, user, password):
            raise Unauthenticated("wrong username or password")
        new = _issue(s, user.id, token_name, list(SCOPES), ctx.settings.token_default_days)
        who = Principal(
            user_id=user.id, username=user.username, client_addr=ctx.principal.client_addr
        )
        audit.record(s, who, "token.create", "token", new.row.id, details={"via": "login"})
    return new


def create_token(
    ctx: Ctx,
    name: str,
    scopes: list[str],
    *,
    expires_in_days: float | None = None,
    user_id: int | None = None,
) -> NewToken:
    """A token for the caller, or for ``user_id`` (a service account the caller owns)."""
    p = ctx.principal
    _require_login(p, "write")
    scopes = _check_scopes(scopes)
    if not set(scopes) <= p.scopes:
        extra = ", ".join(sorted(set(scopes) - p.scopes))
        raise PermissionDenied(
            f"a token cannot grant scopes it lacks itself: {extra}",
            details={"field": "scopes"},
        )
    if expires_in_days is not None and not 0 < expires_in_days <= 3650:
        raise InvalidInput(
            "expires_in_days must be between 0 and 3650", details={"field": "expires_in_days"}
        )
    days = expires_in_days if expires_in_days is not None else ctx.settings.token_default_days
    target = user_id if user_id is not None else p.user_id
    assert target is not None
    with ctx.store.write() as s:
        if target != p.user_id:
            _check_service_account_owner(s, p, target)
        new = _issue(s, target, name, scopes, days)
        audit.record(s, p, "token.create", "token", new.row.id, details={"user_id": target})
    return new


def _check_service_account_owner(s: Session, p: Principal, user_id: int) -> None:
    user = s.get(User, user_id)
    if user is None or not user.is_service or user.service_org_id is None:
        raise NotFound("service account not found")
    if not p.is_admin and p.org_roles.get(user.service_org_id) != "owner":
        raise PermissionDenied("only the organisation's owners manage its service accounts")


def list_tokens(ctx: Ctx, *, user_id: int | None = None) -> list[ApiToken]:
    p = ctx.principal
    if not p.authenticated:
        raise Unauthenticated("log in first")
    target = user_id if user_id is not None else p.user_id
    with ctx.store.read() as s:
        if target != p.user_id:
            _check_service_account_owner(s, p, target)  # type: ignore[arg-type]
        rows = s.scalars(
            select(ApiToken).where(ApiToken.user_id == target).order_by(ApiToken.id)
        ).all()
    return list(rows)


def revoke_token(ctx: Ctx, token_id: int) -> ApiToken:
    p = ctx.principal
    _require_login(p, "write")
    with ctx.store.write() as s:
        row = s.get(ApiToken, token_id)
        if row is None:
            raise NotFound("token not found")
        if row.user_id != p.user_id and not p.is_admin:
            owner = s.get(User, row.user_id)
            if owner is None or not owner.is_service:
                raise NotFound("token not found")
            _check_service_account_owner(s, p, row.user_id)
        if row.revoked_at is None:
            row.revoked_at = _now()
            audit.record(s, p, "token.revoke", "token", row.id)
    return row


def resolve_token(platform: Platform, secret: str, client_addr: str | None = None) -> Principal:
    """The principal behind a bearer token, or ``Unauthenticated``."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        raise Unauthenticated("invalid token")
    with platform.store.read() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(secret)))
        if row is None:
            raise Unauthenticated("invalid token")
        if row.revoked_at is not None:
            raise Unauthenticated("this token has been revoked")
        if row.expires_at is not None and row.expires_at <= _now():
            raise Unauthenticated("this token has expired")
        user = s.get(User, row.user_id)
        if user is None or user.disabled:
            raise Unauthenticated("this account is disabled")
        memberships = s.execute(
            select(Membership.org_id, Membership.role).where(Membership.user_id == user.id)
        ).all()
    return Principal(
        user_id=user.id,
        username=user.username,
        is_admin=user.is_admin,
        org_roles={org: role for org, role in memberships},
        scopes=frozenset(row.scopes),
        token_id=row.id,
        client_addr=client_addr,
    )


def principals_by_hash(platform: Platform, hashes: Collection[str]) -> dict[str, Principal]:
    """The callers behind token hashes still valid now (revoked, expired and disabled
    ones are left out): how serving replicas refresh their token cache in one query."""
    out: dict[str, Principal] = {}
    hashes = list(hashes)
    now = _now()
    with platform.store.read() as s:
        for start in range(0, len(hashes), 500):
            rows = s.execute(
                select(ApiToken, User)
                .join(User, User.id == ApiToken.user_id)
                .where(ApiToken.token_hash.in_(hashes[start : start + 500]))
            ).all()
            valid = [
                (t, u)
                for t, u in rows
                if t.revoked_at is None
                and (t.expires_at is None or t.expires_at > now)
                and not u.disabled
            ]
            roles: dict[int, dict[int, str]] = {u.id: {} for _, u in valid}
            if roles:
                for org, role, uid in s.execute(
                    select(Membership.org_id, Membership.role, Membership.user_id).where(
                        Membership.user_id.in_(roles)
                    )
                ):
                    roles[uid][org] = role
            for t, u in valid:
                out[t.token_hash] = Principal(
                    user_id=u.id, username=u.username, is_admin=u.is_admin,
                    org_roles=roles[u.id], scopes=frozenset(t.scopes), token_id=t.id,
                )  # fmt: skip
    return out


def principal_for_user(platform: Platform, user_id: int) -> Principal:
    """A full-scope principal for a user (local commands, tests)."""
    with platform.store.read() as s:
        user = s.get(User, user_id)
        if user is None:
            raise NotFound("user not found")
        memberships = s.execute(
            select(Membership.org_id, Membership.role).where(Membership.user_id == user_id)
        ).all()
    return Principal(
        user_id=user.id,
        username=user.username,
        is_admin=user.is_admin,
        org_roles={org: role for org, role in memberships},
    )


# Bootstrap --------------------------------------------------------------------------


@dataclass(frozen=True)
class Bootstrap:
    user: User
    password: str | None  # set only when the admin was created now
    token: str | None


def bootstrap_admin(
    platform: Platform, username: str = "admin", password: str | None = None
) -> Bootstrap:
    """Create the first admin if there is none; idempotent."""
    system = Principal(username="system")
    with platform.store.write() as s:
        existing = s.scalar(select(User).where(User.is_admin.is_(True)).order_by(User.id))
        if existing is not None:
            return Bootstrap(existing, None, None)
        password = password or platform.settings.admin_password or secrets.token_urlsafe(12)
        user = _insert_user(
            platform.as_(system), username, password, None, "Administrator", True, session=s
        )
        new = _issue(s, user.id, "bootstrap", list(SCOPES), None)
    return Bootstrap(user, password, new.token)
