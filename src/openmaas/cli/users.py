"""``openmaas user``: accounts (platform admins)."""

from __future__ import annotations

from typing import Annotated

import typer

from openmaas.cli import output
from openmaas.cli.options import Json, Limit, Offset
from openmaas.cli.session import client

app = typer.Typer(
    help="User accounts (creating them needs a platform admin).", no_args_is_help=True
)

COLUMNS: list[output.Column] = [
    ("id", "id"),
    ("user", "username"),
    ("name", "display_name"),
    ("admin", "is_admin"),
    ("service", "is_service"),
    ("created", "created_at"),
]


@app.command("create")
def create(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="Login name.", show_default=False)],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="Initial password, at least 8 characters (prompted).",
        ),
    ],
    admin: Annotated[bool, typer.Option("--admin", help="Make a platform admin.")] = False,
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    display_name: Annotated[str, typer.Option(help="Full name shown to others.")] = "",
    json: Json = False,
) -> None:
    """Create a user account."""
    user = client(ctx).users.create(
        username, password, email=email, display_name=display_name, is_admin=admin
    )
    if json:
        output.emit_json(user)
    else:
        output.success(f"Created user {user.username} (id {user.id})")


@app.command("list")
def list_(ctx: typer.Context, limit: Limit = 50, offset: Offset = 0, json: Json = False) -> None:
    """List user accounts."""
    users = client(ctx).users.list(limit=limit, offset=offset)
    if json:
        output.emit_json(users)
    else:
        output.table(users, COLUMNS, empty="No users.")


@app.command("show")
def show(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="Login name.", show_default=False)],
    json: Json = False,
) -> None:
    """Show one user account."""
    user = client(ctx).users.get(username)
    if json:
        output.emit_json(user)
    else:
        output.details(user, COLUMNS)
