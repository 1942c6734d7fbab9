"""Log-in, tokens and their scopes, expiry and revocation."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from openmaas.errors import NotFound, PermissionDenied, Unauthenticated
from openmaas.store.metadata.tables import ApiToken, User
from tests.api.conftest import make_user
from tests.conftest import sdk


def test_login_whoami_and_password_storage(admin, http, platform) -> None:
    alice = make_user(admin, http, "alice", "s3cret-password")
    me = alice.whoami()
    assert me.username == "alice" and me.scopes == ["predict", "read", "write"]
    with platform.store.read() as s:
        user = s.scalar(select(User).where(User.username == "alice"))
        tokens = s.scalars(select(ApiToken).where(ApiToken.user_id == user.id)).all()
    assert user.password_hash.startswith("$argon2")
    assert tokens[0].token_hash == hashlib.sha256(alice.token.encode()).hexdigest()
    assert alice.token not in {t.token_hash for t in tokens}


def test_wrong_password_is_401(admin, http) -> None:
    make_user(admin, http, "bob")
    r = http.post("/api/v1/auth/login", json={"username": "bob", "password": "nope-nope"})
    assert r.status_code == 401
    assert r.json() == {
        "error": {
            "code": "unauthenticated",
            "message": "wrong username or password",
            "details": {},
        }
    }


def test_token_shown_once_then_listed_without_secret(admin, http) -> None:
    alice = make_user(admin, http, "alice")
    new = alice.tokens.create("ci", ["read"])
    assert new.token.startswith("om_") and len(new.token) > 40
    listed = {t.id: t.to_dict() for t in alice.tokens.list()}
    assert "token" not in listed[new.id] and listed[new.id]["prefix"] == new.token[:10]


def test_read_scope_cannot_write(admin, http) -> None:
    alice = make_user(admin, http, "alice")
    reader = sdk(http, alice.tokens.create("r", ["read"]).token)
    assert reader.whoami().username == "alice"
    with pytest.raises(PermissionDenied, match="this token lacks the 'write' scope"):
        reader.orgs.create("lab")


def test_revoked_and_expired_tokens_stop_working(admin, http, platform) -> None:
    alice = make_user(admin, http, "alice")
    t = alice.tokens.create("temp", ["read", "write"])
    other = sdk(http, t.token)
    assert other.whoami().username == "alice"
    alice.tokens.revoke(t.id)
    with pytest.raises(Unauthenticated, match="this token has been revoked"):
        other.whoami()
    t2 = alice.tokens.create("short", ["read"], expires_in_days=1)
    with platform.store.write() as s:
        s.execute(
            update(ApiToken)
            .where(ApiToken.id == t2.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    with pytest.raises(Unauthenticated, match="this token has expired"):
        sdk(http, t2.token).whoami()


def test_bad_authorization_header(http) -> None:
    r = http.get("/api/v1/auth/whoami", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "use 'Authorization: Bearer <token>'"
    r = http.get("/api/v1/auth/whoami", headers={"Authorization": "Bearer om_forged"})
    assert r.status_code == 401 and r.json()["error"]["message"] == "invalid token"


def test_only_admins_create_users(admin, http) -> None:
    alice = make_user(admin, http, "alice")
    with pytest.raises(PermissionDenied, match="only platform admins may do this"):
        alice.users.create("mallory", "password-123")


def test_cannot_revoke_someone_elses_token(admin, http) -> None:
    alice = make_user(admin, http, "alice")
    bob = make_user(admin, http, "bob")
    t = alice.tokens.create("x", ["read"])
    with pytest.raises(NotFound, match="token not found"):
        bob.tokens.revoke(t.id)


def test_service_account_tokens(admin, http) -> None:
    owner = make_user(admin, http, "olga")
    owner.orgs.create("lab")
    sa = owner.orgs.create_service_account("lab", "ci", role="contributor")
    assert sa.username == "lab.ci" and sa.is_service
    tok = owner.orgs.service_account_token("lab", "lab.ci", scopes=["read", "write"])
    bot = sdk(http, tok.token)
    me = bot.whoami()
    assert me.username == "lab.ci" and me.orgs == {"lab": "contributor"}
    outsider = make_user(admin, http, "eve")
    with pytest.raises(PermissionDenied):
        outsider.orgs.service_account_token("lab", "lab.ci")
