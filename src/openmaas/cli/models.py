"""``openmaas model``: the model registry (cards, versions, aliases, history).

Files in and out (``upload``, ``download``) live in :mod:`openmaas.cli.model_files`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer

from openmaas.cli import model_compress, model_files, output
from openmaas.cli.datasets import human_bytes
from openmaas.cli.options import Json, Limit, Offset, ProjectRef, Yes
from openmaas.cli.session import client
from openmaas.client import Model, ModelVersion

app = typer.Typer(
    help="Models: named, versioned models with a card and aliases (staging, production ...). "
    "Refer to one by id, NAME or ORG/PROJECT/NAME, to a version by NAME@VERSION or NAME@ALIAS.",
    no_args_is_help=True,
)
alias_app = typer.Typer(
    help="Point aliases (staging, production, archived or your own) at versions.",
    no_args_is_help=True,
)

ModelArg = Annotated[
    str,
    typer.Argument(metavar="MODEL", help="Model id, NAME or ORG/PROJECT/NAME.", show_default=False),
]
Alias = Annotated[str, typer.Argument(metavar="ALIAS", help="Alias name.", show_default=False)]
Description = Annotated[str | None, typer.Option(help="What the model does.")]
IntendedUse = Annotated[str | None, typer.Option(help="What it is for, and not for.")]
Licence = Annotated[str | None, typer.Option(help="How it may be used, e.g. Apache-2.0.")]
Citation = Annotated[str | None, typer.Option(help="How to cite it.")]

COLUMNS: list[output.Column] = [
    ("id", "id"),
    ("project", "project"),
    ("name", "name"),
    ("latest", "latest_version"),
    ("aliases", "aliases"),
    ("tags", "tags"),
    ("updated", "updated_at"),
]
CARD: list[output.Column] = [
    ("id", "id"),
    ("model", lambda m: f"{m['project']}/{m['name']}"),
    ("description", "description"),
    ("intended use", "intended_use"),
    ("licence", "licence"),
    ("citation", "citation"),
    ("tags", "tags"),
    ("latest version", "latest_version"),
    ("aliases", "aliases"),
    ("created by", "created_by"),
    ("created", "created_at"),
    ("updated", "updated_at"),
]
VERSION_COLUMNS: list[output.Column] = [
    ("version", "version"),
    ("flavor", "flavor"),
    ("source", lambda v: source_text(v)),
    ("aliases", "aliases"),
    ("inputs", lambda v: len(v["signature"].get("inputs", []))),
    ("size", lambda v: human_bytes(v["size_bytes"])),
    ("description", "description"),
    ("created by", "created_by"),
    ("created", "created_at"),
]
HISTORY_COLUMNS: list[output.Column] = [
    ("at", "at"),
    ("actor", "actor"),
    ("action", "action"),
    ("version", "version"),
    ("alias", "alias"),
    ("details", lambda e: {k: v for k, v in e["details"].items() if v is not None}),
]


def source_text(v: Mapping[str, Any]) -> str:
    """``run 12``, ``upload``, ``mlflow``: where a version came from."""
    run_id = (v.get("lineage") or {}).get("run_id")
    return f"{v['source']} {run_id}" if v["source"] == "run" and run_id else str(v["source"])


def short_names(names: list[str], shown: int = 8) -> str:
    text = ", ".join(names[:shown])
    return f"{len(names)}: {text}" + (", …" if len(names) > shown else "")


def score_text(metrics: dict[str, Any]) -> str | None:
    if metrics.get("score") is None:
        return None
    std = metrics.get("score_std")
    spread = "" if std is None else f" ± {std:.4f}"
    return f"{metrics.get('metric')} {metrics['score']:.4f}{spread}"


def print_version(v: ModelVersion) -> None:
    lineage = {k: x for k, x in (v.lineage or {}).items() if x is not None}
    info: dict[str, Any] = {
        "version": v.ref,
        "flavor": v.flavor,
        "source": source_text(v.to_dict()),
        "aliases": v.aliases,
        "description": v.description or None,
        "task type": v.task_type,
        "inputs": short_names(v.input_names),
        "classes": v.classes,
        "score": score_text(v.metrics or {}),
        "lineage": lineage or None,
        "size": human_bytes(v.size_bytes),
        "created by": v.created_by,
        "created": v.created_at,
    }
    output.details({k: x for k, x in info.items() if x not in (None, "", [])})
    files: list[output.Column] = [
        ("file", "path"),
        ("size", lambda f: human_bytes(f["size_bytes"])),
        ("sha256", lambda f: str(f["digest"])[:12]),
    ]
    output.table(v.files, files, empty="No files.")


def card_fields(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


# Models --------------------------------------------------------------------------------


@app.command("create")
def create(
    ctx: typer.Context,
    project: ProjectRef,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Model name.", show_default=False)],
    description: Description = None,
    intended_use: IntendedUse = None,
    licence: Licence = None,
    citation: Citation = None,
    tag: Annotated[
        list[str] | None, typer.Option(metavar="TAG", help="A tag; repeat for several.")
    ] = None,
    json: Json = False,
) -> None:
    """Register a model name in a project; add versions with `upload` or `register`."""
    model = client(ctx).models.create(
        project,
        name,
        description=description or "",
        intended_use=intended_use or "",
        licence=licence,
        citation=citation,
        tags=tag,
    )
    if json:
        output.emit_json(model)
    else:
        output.success(f"Created model {model.full_name} (id {model.id})")


@app.command("list")
def list_(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option(help="Project id or ORG/NAME.")] = None,
    q: Annotated[str | None, typer.Option("--q", help="Name contains.")] = None,
    tag: Annotated[str | None, typer.Option(help="Has this tag.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    json: Json = False,
) -> None:
    """Search the models you can read, newest first."""
    page = client(ctx).models.list(project=project, q=q, tag=tag, limit=limit, offset=offset)
    if json:
        output.emit_json(page.items)
        return
    output.table(page.items, COLUMNS, empty="No models.")
    if page.total > len(page.items) + offset:
        output.note(f"showing {len(page.items)} of {page.total}; use --offset / --limit for more")


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(
            metavar="MODEL[@VERSION]",
            help="A model (its card and versions), or one version: NAME@3, NAME@production.",
            show_default=False,
        ),
    ],
    json: Json = False,
) -> None:
    """Show a model's card, aliases and latest versions, or one version in detail."""
    c = client(ctx)
    if "@" in ref:
        version = c.models.resolve(ref)
        if json:
            output.emit_json(version)
        else:
            print_version(version)
        return
    model = c.models.get(ref)
    page = c.models.versions(model, limit=10)
    if json:
        output.emit_json({"model": model, "versions": page.items})
        return
    output.details(model, CARD, title=f"Model {model.full_name}")
    output.table(page.items, VERSION_COLUMNS, empty="No versions yet: add one with `upload`.")
    if page.total > len(page.items):
        output.note(f"showing {len(page.items)} of {page.total} versions; see `model versions`")


@app.command("update")
def update(
    ctx: typer.Context,
    model: ModelArg,
    description: Description = None,
    intended_use: IntendedUse = None,
    licence: Licence = None,
    citation: Citation = None,
    tag: Annotated[
        list[str] | None, typer.Option(metavar="TAG", help="Replace the tags; repeat for several.")
    ] = None,
    json: Json = False,
) -> None:
    """Edit the model card."""
    changes = card_fields(
        description=description,
        intended_use=intended_use,
        licence=licence,
        citation=citation,
        tags=tag,
    )
    if not changes:
        raise typer.BadParameter("nothing to change: give --description, --tag ...")
    updated = client(ctx).models.update(model, **changes)
    if json:
        output.emit_json(updated)
    else:
        output.success(f"Updated model {updated.full_name}")


@app.command("delete")
def delete(ctx: typer.Context, model: ModelArg, yes: Yes = False) -> None:
    """Delete a model and all its versions."""
    c = client(ctx)
    found = c.models.get(model)
    if not yes:
        typer.confirm(
            f"Delete model {found.full_name} and its {found.latest_version} version(s)?",
            abort=True,
            err=True,
        )
    c.models.delete(found)
    output.success(f"Deleted model {found.full_name}")


# Versions ------------------------------------------------------------------------------


def version_created(version: ModelVersion, json: bool) -> None:
    if json:
        output.emit_json(version)
    else:
        origin = source_text(version.to_dict())
        output.success(f"Created version {version.ref} ({version.flavor}, from {origin})")


@app.command("register")
def register_run(
    ctx: typer.Context,
    model: ModelArg,
    run: Annotated[
        int, typer.Option("--run", "-r", help="A succeeded run's id.", show_default=False)
    ],
    description: Annotated[str, typer.Option(help="What is new in this version.")] = "",
    json: Json = False,
) -> None:
    """Add a version from a succeeded run's final model."""
    version_created(client(ctx).models.register_run(model, run, description), json)


model_files.register(app)
model_compress.register(app)


@app.command("versions")
def versions(
    ctx: typer.Context, model: ModelArg, limit: Limit = 50, offset: Offset = 0, json: Json = False
) -> None:
    """List a model's versions, newest first."""
    page = client(ctx).models.versions(model, limit=limit, offset=offset)
    if json:
        output.emit_json(page.items)
        return
    output.table(page.items, VERSION_COLUMNS, empty="No versions.")
    if page.total > len(page.items) + offset:
        output.note(f"showing {len(page.items)} of {page.total}; use --offset / --limit for more")


@app.command("history")
def history(
    ctx: typer.Context, model: ModelArg, limit: Limit = 50, offset: Offset = 0, json: Json = False
) -> None:
    """Every version, alias and card change, newest first, with who and when."""
    page = client(ctx).models.history(model, limit=limit, offset=offset)
    if json:
        output.emit_json(page.items)
        return
    output.table(page.items, HISTORY_COLUMNS, empty="No history.")
    if page.total > len(page.items) + offset:
        output.note(f"showing {len(page.items)} of {page.total}; use --offset / --limit for more")


# Aliases -------------------------------------------------------------------------------

app.add_typer(alias_app, name="alias")


def aliases_changed(model: Model, message: str, json: bool) -> None:
    if json:
        output.emit_json(model)
        return
    output.success(message)
    now = ", ".join(f"{a} → v{v}" for a, v in model.aliases.items()) or "none"
    output.note(f"aliases of {model.full_name}: {now}")


@alias_app.command("set")
def alias_set(
    ctx: typer.Context,
    model: ModelArg,
    alias: Alias,
    version: Annotated[
        int, typer.Argument(metavar="VERSION", min=1, help="Version number.", show_default=False)
    ],
    json: Json = False,
) -> None:
    """Point ALIAS at a version (production needs a maintainer)."""
    updated = client(ctx).models.set_alias(model, alias, version)
    aliases_changed(updated, f"{updated.full_name}@{alias} is now version {version}", json)


@alias_app.command("rm")
def alias_rm(ctx: typer.Context, model: ModelArg, alias: Alias, json: Json = False) -> None:
    """Remove an alias (the version stays)."""
    updated = client(ctx).models.remove_alias(model, alias)
    aliases_changed(updated, f"Removed {updated.full_name}@{alias}", json)
