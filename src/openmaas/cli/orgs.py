"""``openmaas org``: organisations, their members and service accounts."""

from __future__ import annotations

from typing import Annotated

import typer

from openmaas.cli import output
from openmaas.cli.options import (
    Days,
    Json,
    Limit,
    Offset,
    RoleOpt,
    Scopes,
    ServiceRole,
    scopes_or_default,
)
from openmaas.cli.session import client
from openmaas.cli.tokens import show_new_token

app = typer.Typer(help="Organisations, their members and service accounts.", no_args_is_help=True)
service_accounts = typer.Typer(
    help="Service accounts: organisation-owned identities for automation.", no_args_is_help=True
)
app.add_typer(service_accounts, name="service-account")

Org = Annotated[str, typer.Argument(metavar="ORG", help="Organisation name.", show_default=False)]
User = Annotated[str, typer.Argument(metavar="USER", help="User name.", show_default=False)]

COLUMNS: list[output.Column] = [
    ("name", "name"),
    ("display name", "display_name"),
    ("description", "description"),
    ("created", "created_at"),
]
MEMBER_COLUMNS: list[output.Column] = [
    ("user", "username"),
    ("role", "role"),
    ("service", "is_service"),
]


@app.command("create")
def create(
    ctx: typer.Context,
    name: Org,
    display_name: Annotated[str, typer.Option(help="Human-friendly name.")] = "",
    description: Annotated[str, typer.Option(help="What the organisation is.")] = "",
    json: Json = False,
) -> None:
    """Create an organisation; you become its owner."""
    org = client(ctx).orgs.create(name, display_name=display_name, description=description)
    if json:
        output.emit_json(org)
    else:
        output.success(f"Created organisation {org.name}")


@app.command("list")
def list_(
    ctx: typer.Context,
    q: Annotated[str | None, typer.Option("--q", help="Name contains.")] = None,
    mine: Annotated[bool, typer.Option("--mine", help="Only those you belong to.")] = False,
    limit: Limit = 50,
    offset: Offset = 0,
    json: Json = False,
) -> None:
    """List organisations."""
    page = client(ctx).orgs.list(q, mine=mine, limit=limit, offset=offset)
    if json:
        output.emit_json(page.items)
    else:
        output.table(page.items, COLUMNS, empty="No organisations.")


@app.command("show")
def show(ctx: typer.Context, name: Org, json: Json = False) -> None:
    """Show an organisation."""
    org = client(ctx).orgs.get(name)
    if json:
        output.emit_json(org)
    else:
        output.details(org, [("id", "id"), *COLUMNS])


@app.command("members")
def members(ctx: typer.Context, name: Org, json: Json = False) -> None:
    """List the members of an organisation and their roles."""
    rows = client(ctx).orgs.members(name)
    if json:
        output.emit_json(rows)
    else:
        output.table(rows, MEMBER_COLUMNS, empty="No members.")


@app.command("add-member")
def add_member(
    ctx: typer.Context, name: Org, user: User, role: RoleOpt, json: Json = False
) -> None:
    """Add a member, or change a member's role (organisation owners)."""
    member = client(ctx).orgs.set_member(name, user, role)
    if json:
        output.emit_json(member)
    else:
        output.success(f"{user} is now {member.role} of {name}")


@app.command("remove-member")
def remove_member(ctx: typer.Context, name: Org, user: User) -> None:
    """Remove a member from an organisation."""
    client(ctx).orgs.remove_member(name, user)
    output.success(f"Removed {user} from {name}")


@service_accounts.command("create")
def create_service_account(
    ctx: typer.Context,
    org: Org,
    name: Annotated[str, typer.Argument(help="Account name.", show_default=False)],
    role: Annotated[
        ServiceRole, typer.Option("--role", "-r", help="Its role in the organisation.")
    ] = "contributor",
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    json: Json = False,
) -> None:
    """Create a service account in an organisation (organisation owners)."""
    account = client(ctx).orgs.create_service_account(org, name, role, description)
    if json:
        output.emit_json(account)
    else:
        output.success(f"Created service account {account.username} ({account.role}) in {org}")


@service_accounts.command("list")
def list_service_accounts(ctx: typer.Context, org: Org, json: Json = False) -> None:
    """List an organisation's service accounts."""
    rows = client(ctx).orgs.service_accounts(org)
    if json:
        output.emit_json(rows)
    else:
        output.table(rows, MEMBER_COLUMNS[:2], empty="No service accounts.")


@service_accounts.command("token")
def service_account_token(
    ctx: typer.Context,
    org: Org,
    username: Annotated[
        str,
        typer.Argument(
            metavar="ACCOUNT", help="Service account: ORG.NAME, or just NAME.", show_default=False
        ),
    ],
    scopes: Scopes = None,
    name: Annotated[str, typer.Option("--name", "-n", help="A label for the token.")] = "service",
    days: Days = None,
    json: Json = False,
) -> None:
    """Create an API token for a service account; prints its secret once."""
    if "." not in username:  # service accounts are named ORG.NAME
        username = f"{org}.{username}"
    token = client(ctx).orgs.service_account_token(
        org, username, scopes=scopes_or_default(scopes), token_name=name, expires_in_days=days
    )
    show_new_token(token, json)
