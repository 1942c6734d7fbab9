"""Request dependencies: the platform, the caller, and short ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

import annotated_types
from fastapi import Depends, Query, Request

from openmaas.domain.context import Ctx, Platform
from openmaas.domain.identity import resolve_token
from openmaas.domain.pages import MAX_ID
from openmaas.domain.principal import ANONYMOUS, Principal
from openmaas.errors import Unauthenticated


def get_platform(request: Request) -> Platform:
    return request.app.state.platform  # type: ignore[no-any-return]


def client_addr(request: Request) -> str | None:
    platform = get_platform(request)
    if platform.settings.trust_proxy_headers:
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.split(",")[0].strip()[:64]
    return request.client.host if request.client else None


def get_principal(request: Request) -> Principal:
    header = request.headers.get("authorization")
    addr = client_addr(request)
    if not header:
        return Principal(client_addr=addr) if addr else ANONYMOUS
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated("use 'Authorization: Bearer <token>'")
    return resolve_token(get_platform(request), secret.strip(), addr)


def get_ctx(request: Request) -> Ctx:
    return get_platform(request).as_(get_principal(request))


CtxDep = Annotated[Ctx, Depends(get_ctx)]
# Ids are 32-bit in the database: anything outside is the id of nothing (422, never a 500).
DbId = Annotated[int, annotated_types.Ge(1), annotated_types.Le(MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=10**9, description="Items to skip.")]
