"""``openmaas project``: projects, their partner grants, members and audit log."""

from __future__ import annotations

from typing import Annotated

import typer

from openmaas.cli import output
from openmaas.cli.options import Json, Limit, Offset, ProjectRef, RoleOpt, Yes
from openmaas.cli.session import client

app = typer.Typer(
    help="Projects: where datasets, tasks and models live. Refer to one by id or ORG/NAME.",
    no_args_is_help=True,
)

Org = Annotated[str, typer.Argument(metavar="ORG", help="Organisation name.", show_default=False)]
User = Annotated[str, typer.Argument(metavar="USER", help="User name.", show_default=False)]
Description = Annotated[str | None, typer.Option(help="What the project is about.")]
Licence = Annotated[str | None, typer.Option(help="Licence of its content, e.g. CC-BY-4.0.")]
Citation = Annotated[str | None, typer.Option(help="How to cite it.")]

COLUMNS: list[output.Column] = [
    ("id", "id"),
    ("project", "full_name"),
    ("visibility", "visibility"),
    ("your role", "role"),
    ("description", "description"),
    ("updated", "updated_at"),
]
DETAILS: list[output.Column] = [
    ("id", "id"),
    ("project", "full_name"),
    ("visibility", "visibility"),
    ("your role", "role"),
    ("description", "description"),
    ("licence", "licence"),
    ("citation", "citation"),
    ("created", "created_at"),
    ("updated", "updated_at"),
]


@app.command("create")
def create(
    ctx: typer.Context,
    full_name: Annotated[
        str, typer.Argument(metavar="ORG/NAME", help="Organisation and project name.")
    ],
    public: Annotated[
        bool, typer.Option("--public/--private", help="Readable by everyone, or members only.")
    ] = False,
    description: Description = None,
    licence: Licence = None,
    citation: Citation = None,
    json: Json = False,
) -> None:
    """Create a project in an organisation you maintain."""
    org, sep, name = full_name.partition("/")
    if not sep or not org or not name:
        raise typer.BadParameter("use ORG/NAME, e.g. acme/churn", param_hint="ORG/NAME")
    project = client(ctx).projects.create(
        org,
        name,
        visibility="public" if public else "private",
        description=description or "",
        licence=licence,
        citation=citation,
    )
    if json:
        output.emit_json(project)
    else:
        output.success(f"Created project {project.full_name} (id {project.id})")


@app.command("list")
def list_(
    ctx: typer.Context,
    org: Annotated[str | None, typer.Option(help="Only this organisation's.")] = None,
    q: Annotated[str | None, typer.Option("--q", help="Name contains.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    json: Json = False,
) -> None:
    """List the projects you can read."""
    page = client(ctx).projects.list(org=org, q=q, limit=limit, offset=offset)
    if json:
        output.emit_json(page.items)
    else:
        output.table(page.items, COLUMNS, empty="No projects.")


@app.command("show")
def show(ctx: typer.Context, ref: ProjectRef, json: Json = False) -> None:
    """Show a project."""
    project = client(ctx).projects.get(ref)
    if json:
        output.emit_json(project)
    else:
        output.details(project, DETAILS)


@app.command("update")
def update(
    ctx: typer.Context,
    ref: ProjectRef,
    public: Annotated[
        bool | None, typer.Option("--public/--private", help="Change the visibility.")
    ] = None,
    description: Description = None,
    licence: Licence = None,
    citation: Citation = None,
    json: Json = False,
) -> None:
    """Change a project's visibility, description, licence or citation."""
    fields = {
        "visibility": None if public is None else ("public" if public else "private"),
        "description": description,
        "licence": licence,
        "citation": citation,
    }
    changes = {k: v for k, v in fields.items() if v is not None}
    if not changes:
        raise typer.BadParameter("nothing to change: give --public/--private, --description ...")
    project = client(ctx).projects.update(ref, **changes)
    if json:
        output.emit_json(project)
    else:
        output.success(f"Updated project {project.full_name}")


@app.command("delete")
def delete(ctx: typer.Context, ref: ProjectRef, yes: Yes = False) -> None:
    """Delete a project with all its datasets and tasks."""
    c = client(ctx)
    project = c.projects.get(ref)
    if not yes:
        typer.confirm(
            f"Delete project {project.full_name} and everything in it?", abort=True, err=True
        )
    c.projects.delete(project.id)
    output.success(f"Deleted project {project.full_name}")


@app.command("transfer")
def transfer(ctx: typer.Context, ref: ProjectRef, org: Org, json: Json = False) -> None:
    """Move a project to another organisation."""
    project = client(ctx).projects.transfer(ref, org)
    if json:
        output.emit_json(project)
    else:
        output.success(f"Project is now {project.full_name}")


@app.command("grant")
def grant(ctx: typer.Context, ref: ProjectRef, org: Org, role: RoleOpt, json: Json = False) -> None:
    """Give every member of a partner organisation a role on the project."""
    row = client(ctx).projects.grant(ref, org, role)
    if json:
        output.emit_json(row)
    else:
        output.success(f"Members of {org} are now {row.role} on {ref}")


@app.command("revoke")
def revoke(ctx: typer.Context, ref: ProjectRef, org: Org) -> None:
    """Withdraw a partner organisation's grant."""
    client(ctx).projects.revoke_grant(ref, org)
    output.success(f"Revoked the grant of {org} on {ref}")


@app.command("grants")
def grants(ctx: typer.Context, ref: ProjectRef, json: Json = False) -> None:
    """List the partner organisations with a role on the project."""
    rows = client(ctx).projects.grants(ref)
    if json:
        output.emit_json(rows)
    else:
        columns: list[output.Column] = [("org", "org"), ("role", "role"), ("since", "created_at")]
        output.table(rows, columns, empty="No grants.")


@app.command("member-set")
def member_set(
    ctx: typer.Context, ref: ProjectRef, user: User, role: RoleOpt, json: Json = False
) -> None:
    """Give a user a role on the project (in addition to their organisation roles)."""
    row = client(ctx).projects.set_member(ref, user, role)
    if json:
        output.emit_json(row)
    else:
        output.success(f"{user} is now {row.role} on {ref}")


@app.command("member-remove")
def member_remove(ctx: typer.Context, ref: ProjectRef, user: User) -> None:
    """Remove a user's project role."""
    client(ctx).projects.remove_member(ref, user)
    output.success(f"Removed {user} from {ref}")


@app.command("members")
def members(ctx: typer.Context, ref: ProjectRef, json: Json = False) -> None:
    """List users with a role on the project itself."""
    rows = client(ctx).projects.members(ref)
    if json:
        output.emit_json(rows)
    else:
        output.table(rows, [("user", "username"), ("role", "role")], empty="No members.")


@app.command("audit")
def audit(
    ctx: typer.Context,
    ref: ProjectRef,
    action: Annotated[
        str | None, typer.Option(help="Only this action, e.g. dataset.create.")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Only this user's actions.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    json: Json = False,
) -> None:
    """Show the project's audit log, newest first."""
    page = client(ctx).projects.audit(ref, action=action, actor=actor, limit=limit, offset=offset)
    if json:
        output.emit_json(page.items)
        return
    columns: list[output.Column] = [
        ("at", "at"),
        ("actor", "actor"),
        ("action", "action"),
        ("resource", lambda r: f"{r['resource_type']} {r['resource_id']}"),
        ("details", "details"),
    ]
    output.table(page.items, columns, empty="No audit events.")
    if page.total > len(page.items) + offset:
        output.note(f"showing {len(page.items)} of {page.total}; use --offset / --limit for more")
