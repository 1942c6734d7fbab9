"""``login``, ``logout`` and ``whoami``."""

from __future__ import annotations

from typing import Annotated

import httpx
import typer

from openmaas.cli import credentials, output
from openmaas.cli.options import Json
from openmaas.cli.session import client, session
from openmaas.errors import OpenMaaSError


def login(
    ctx: typer.Context,
    username: Annotated[str, typer.Option("--username", "-u", prompt=True, help="Your user name.")],
    password: Annotated[
        str,
        typer.Option(
            "--password", "-p", prompt=True, hide_input=True, help="Your password (prompted)."
        ),
    ],
    token_name: Annotated[
        str, typer.Option("--token-name", help="Name of the token created for this login.")
    ] = "cli",
) -> None:
    """Log in with a password and save the new API token for this server."""
    s = session(ctx)
    c = client(ctx)
    c.login(username, password, token_name=token_name)
    assert c.token is not None
    file = credentials.store(s.url, c.token)
    output.success(f"Logged in to {s.url} as {username}; token saved in {file}")


def logout(ctx: typer.Context) -> None:
    """Revoke the saved token of this server and forget it."""
    s = session(ctx)
    token = credentials.token_for(s.url)
    if token is None:
        output.note(f"no saved token for {s.url}")
        return
    try:
        c = s.make_client(s.url, token)
        with c:
            mine = next((t for t in c.tokens.list() if token.startswith(t.prefix)), None)
            if mine is not None:
                c.tokens.revoke(mine.id)
    except (OpenMaaSError, httpx.HTTPError) as e:  # the local copy goes regardless
        reason = e.message if isinstance(e, OpenMaaSError) else str(e) or type(e).__name__
        output.note(f"could not revoke the token on the server ({reason}); forgetting it here")
    credentials.forget(s.url)
    output.success(f"Logged out of {s.url}")


def whoami(ctx: typer.Context, json: Json = False) -> None:
    """Show the account behind the current token."""
    me = client(ctx).whoami()
    if json:
        output.emit_json(me)
        return
    output.details(
        me,
        [
            ("user", "username"),
            ("name", "display_name"),
            ("admin", "is_admin"),
            ("service account", "is_service"),
            ("organisations", lambda m: [f"{o} ({r})" for o, r in m.get("orgs", {}).items()]),
            ("scopes", "scopes"),
            ("server", lambda _: session(ctx).url),
            ("token from", lambda _: session(ctx).token_source),
        ],
    )


def register(app: typer.Typer, panel: str) -> None:
    for command in (login, logout, whoami):
        app.command(rich_help_panel=panel)(command)
