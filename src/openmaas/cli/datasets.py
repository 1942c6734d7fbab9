"""``openmaas dataset``: listing, inspecting and curating datasets.

Moving data in and out (``upload``, ``append``, ``download``) lives in
:mod:`openmaas.cli.transfers`; the profile table in :mod:`openmaas.cli.profile`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from openmaas.cli import output, profile, transfers
from openmaas.cli.options import Json, Limit, Offset, Yes
from openmaas.cli.session import client

app = typer.Typer(
    help="Datasets: versioned, profiled tables with a data card.", no_args_is_help=True
)
transfers.register(app)

DatasetId = Annotated[int, typer.Argument(metavar="ID", help="Dataset id.", show_default=False)]
Version = Annotated[str, typer.Option("--version", "-v", help="Version number or 'latest'.")]

COLUMNS: list[output.Column] = [
    ("id", "id"),
    ("project", "project"),
    ("name", "name"),
    ("latest", "latest_version"),
    ("tags", "tags"),
    ("deprecated", lambda d: d.get("deprecation_reason") or ("yes" if d["deprecated"] else "")),
    ("updated", "updated_at"),
]
CARD: list[output.Column] = [
    ("id", "id"),
    ("project", "project"),
    ("name", "name"),
    ("description", "description"),
    ("source", "source"),
    ("licence", "licence"),
    ("citation", "citation"),
    ("tags", "tags"),
    ("deprecated", lambda d: d.get("deprecation_reason") or d["deprecated"]),
    ("created", "created_at"),
    ("updated", "updated_at"),
]
VERSION_COLUMNS: list[output.Column] = [
    ("version", "version"),
    ("rows", "n_rows"),
    ("columns", "n_columns"),
    ("size", lambda v: human_bytes(v["size_bytes"])),
    ("from", "source_format"),
    ("note", "note"),
    ("created", "created_at"),
]


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


@app.command("list")
def list_(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option(help="Project id or ORG/NAME.")] = None,
    q: Annotated[str | None, typer.Option("--q", help="Name contains.")] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(metavar="TAG", help="Has this tag; repeat for all of several."),
    ] = None,
    hide_deprecated: Annotated[
        bool, typer.Option("--hide-deprecated", help="Leave deprecated datasets out.")
    ] = False,
    limit: Limit = 50,
    offset: Offset = 0,
    json: Json = False,
) -> None:
    """Search the datasets you can read."""
    page = client(ctx).datasets.list(
        project=project,
        q=q,
        tags=tag,
        include_deprecated=not hide_deprecated,
        limit=limit,
        offset=offset,
    )
    if json:
        output.emit_json(page.items)
        return
    output.table(page.items, COLUMNS, empty="No datasets.")
    if page.total > len(page.items) + offset:
        output.note(f"showing {len(page.items)} of {page.total}; use --offset / --limit for more")


@app.command("show")
def show(
    ctx: typer.Context, dataset_id: DatasetId, version: Version = "latest", json: Json = False
) -> None:
    """Show a dataset's card, a version (the latest by default) and its columns."""
    c = client(ctx)
    dataset = c.datasets.get(dataset_id)
    row = c.datasets.version(dataset_id, version)
    if json:
        output.emit_json({"dataset": dataset, "version": row})
        return
    output.details(dataset, CARD, title=f"Dataset {dataset.project}/{dataset.name}")
    output.details(row, [*VERSION_COLUMNS, ("sha256", "digest")], title=f"Version {row.version}")
    output.table(row.columns, [("column", "name"), ("kind", "kind"), ("type", "dtype")])


@app.command("versions")
def versions(ctx: typer.Context, dataset_id: DatasetId, json: Json = False) -> None:
    """List a dataset's versions."""
    rows = client(ctx).datasets.versions(dataset_id)
    if json:
        output.emit_json(rows)
    else:
        output.table(rows, VERSION_COLUMNS, empty="No versions.")


@app.command("profile")
def profile_(
    ctx: typer.Context, dataset_id: DatasetId, version: Version = "latest", json: Json = False
) -> None:
    """Per-column statistics: kind, missing and distinct values, moments or top value."""
    data = client(ctx).datasets.profile(dataset_id, version)
    if json:
        output.emit_json(data)
    else:
        profile.render(data)


@app.command("update")
def update(
    ctx: typer.Context,
    dataset_id: DatasetId,
    description: Annotated[str | None, typer.Option(help="What the data is.")] = None,
    source: Annotated[str | None, typer.Option(help="Where it comes from.")] = None,
    licence: Annotated[str | None, typer.Option(help="How it may be used.")] = None,
    citation: Annotated[str | None, typer.Option(help="How to cite it.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option(metavar="TAG", help="Replace the tags; repeat for several.")
    ] = None,
    json: Json = False,
) -> None:
    """Edit the data card."""
    fields = {
        "description": description,
        "source": source,
        "licence": licence,
        "citation": citation,
        "tags": tag,
    }
    changes = {k: v for k, v in fields.items() if v is not None}
    if not changes:
        raise typer.BadParameter("nothing to change: give --description, --tag ...")
    dataset = client(ctx).datasets.update(dataset_id, **changes)
    if json:
        output.emit_json(dataset)
    else:
        output.success(f"Updated dataset {dataset.id} ({dataset.name})")


@app.command("deprecate")
def deprecate(
    ctx: typer.Context,
    dataset_id: DatasetId,
    reason: Annotated[str, typer.Option(help="Why it should no longer be used.")],
    json: Json = False,
) -> None:
    """Mark a dataset as deprecated; it stays readable."""
    dataset = client(ctx).datasets.deprecate(dataset_id, reason)
    if json:
        output.emit_json(dataset)
    else:
        output.success(f"Deprecated dataset {dataset.id} ({dataset.name})")


@app.command("undeprecate")
def undeprecate(ctx: typer.Context, dataset_id: DatasetId, json: Json = False) -> None:
    """Withdraw a deprecation."""
    dataset = client(ctx).datasets.undeprecate(dataset_id)
    if json:
        output.emit_json(dataset)
    else:
        output.success(f"Dataset {dataset.id} ({dataset.name}) is no longer deprecated")


@app.command("delete")
def delete(ctx: typer.Context, dataset_id: DatasetId, yes: Yes = False) -> None:
    """Delete a dataset and all its versions."""
    c = client(ctx)
    dataset = c.datasets.get(dataset_id)
    if not yes:
        typer.confirm(
            f"Delete dataset {dataset.id} ({dataset.project}/{dataset.name}) and its "
            f"{dataset.latest_version} version(s)?",
            abort=True,
            err=True,
        )
    c.datasets.delete(dataset_id)
    output.success(f"Deleted dataset {dataset.id} ({dataset.name})")
