"""What every command needs: the server, the token, and how to build a client or platform.

The root command puts a :class:`Session` in the Typer context; commands reach it
with :func:`client` (remote commands) or :func:`platform` (local ones).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer

from openmaas.client import Client

if TYPE_CHECKING:
    from openmaas.domain.context import Platform


@dataclass
class Session:
    url: str
    token: str | None
    token_source: str  # "--token", "OPENMAAS_TOKEN", "credentials file" or "none"
    make_client: Callable[[str, str | None], Client]
    make_platform: Callable[[], Platform]
    _client: Client | None = field(default=None, repr=False)

    def client(self) -> Client:
        if self._client is None:
            self._client = self.make_client(self.url, self.token)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def session(ctx: typer.Context) -> Session:
    found = ctx.find_object(Session)
    if found is None:
        raise RuntimeError("no CLI session: run commands through openmaas.cli.main.app")
    return found


def client(ctx: typer.Context) -> Client:
    """The SDK client of this invocation, built on first use and closed at exit."""
    return session(ctx).client()


@contextmanager
def platform(ctx: typer.Context) -> Iterator[Platform]:
    """The locally configured stores (``OPENMAAS_HOME``, ``OPENMAAS_DATABASE_URL`` ...)."""
    p = session(ctx).make_platform()
    try:
        yield p
    finally:
        p.store.dispose()
