"""Who is calling: resolved once per request from the token, then passed down."""

from __future__ import annotations

from dataclasses import dataclass, field

SCOPES = ("read", "write", "predict")


@dataclass(frozen=True)
class Principal:
    user_id: int | None = None
    username: str = "anonymous"
    is_admin: bool = False
    # Organisation id -> role name of the caller's memberships.
    org_roles: dict[int, str] = field(default_factory=dict)
    scopes: frozenset[str] = frozenset(SCOPES)
    token_id: int | None = None
    client_addr: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None

    @property
    def org_ids(self) -> list[int]:
        return list(self.org_roles)


ANONYMOUS = Principal()
