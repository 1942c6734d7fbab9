"""``openmaas token``: your API tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from openmaas.cli import output
from openmaas.cli.options import Days, Json, Scopes, scopes_or_default
from openmaas.cli.session import client
from openmaas.client import Record

app = typer.Typer(help="Your API tokens, for scripts and the SDK.", no_args_is_help=True)

COLUMNS: list[output.Column] = [
    ("id", "id"),
    ("name", "name"),
    ("prefix", "prefix"),
    ("scopes", "scopes"),
    ("created", "created_at"),
    ("expires", "expires_at"),
    ("revoked", "revoked_at"),
]


def show_new_token(token: Record, json: bool) -> None:
    """Print a freshly created token; its secret is never shown again."""
    if json:
        output.emit_json(token)
        return
    fields = [("id", "id"), ("name", "name"), ("scopes", "scopes"), ("expires", "expires_at")]
    output.details(token, fields)
    typer.echo(token.token)
    output.note("Copy the token now: it is not shown again.")


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", "-n", help="A label to recognise it.")] = "token",
    scopes: Scopes = None,
    days: Days = None,
    json: Json = False,
) -> None:
    """Create a token; prints its secret once."""
    token = client(ctx).tokens.create(name, scopes_or_default(scopes), expires_in_days=days)
    show_new_token(token, json)


@app.command("list")
def list_(ctx: typer.Context, json: Json = False) -> None:
    """List your tokens (their secrets are not stored, only a prefix)."""
    tokens = client(ctx).tokens.list()
    if json:
        output.emit_json(tokens)
    else:
        output.table(tokens, COLUMNS, empty="No tokens.")


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    token_id: Annotated[int, typer.Argument(metavar="ID", help="Token id (see `token list`).")],
    json: Json = False,
) -> None:
    """Revoke a token; it stops working at once."""
    token = client(ctx).tokens.revoke(token_id)
    if json:
        output.emit_json(token)
    else:
        output.success(f"Revoked token {token.id} ({token.name})")
