"""``openmaas model upload | download``: model files in and out, with progress bars."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from openmaas.cli import output
from openmaas.cli.options import Json
from openmaas.cli.session import client

Flavor = Literal["lightgbm", "skops", "onnx", "pickle", "pipeline"]


def parse_columns(pairs: list[str]) -> dict[str, Any]:
    """``["age=numeric", "city=categorical", "x"]`` as a signature (kind numeric by default)."""
    inputs = []
    for pair in pairs:
        name, sep, kind = pair.partition("=")
        if not name or (sep and not kind):
            raise typer.BadParameter(f"{pair!r} is not NAME or NAME=KIND", param_hint="--column")
        inputs.append({"name": name, "kind": kind or "numeric"})
    return {"inputs": inputs}


def read_signature(path: Path) -> dict[str, Any]:
    try:
        signature = jsonlib.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise typer.BadParameter(f"{path} is not valid JSON: {e}", param_hint="--signature") from e
    if not isinstance(signature, dict):
        raise typer.BadParameter(
            f'{path} must hold a JSON object: {{"inputs": [{{"name", "kind"}}, ...]}}',
            param_hint="--signature",
        )
    return signature


def upload(
    ctx: typer.Context,
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL", help="Model id, NAME or ORG/PROJECT/NAME.", show_default=False
        ),
    ],
    path: Annotated[
        Path,
        typer.Argument(
            metavar="PATH",
            exists=True,
            readable=True,
            help="model.txt (LightGBM), *.onnx, *.skops, a .zip/.tar.gz, or a folder "
            "(a model folder or an MLflow model), zipped before it is sent.",
            show_default=False,
        ),
    ],
    flavor: Annotated[
        Flavor | None, typer.Option(help="The model format. (default: from the file)")
    ] = None,
    signature: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help='A JSON file: {"inputs": [{"name": ..., "kind": ...}, ...]}. '
            "(default: from an MLmodel or from the model)",
        ),
    ] = None,
    column: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME[=KIND]",
            help="An input column, in the order the model reads them; repeat for each "
            "(instead of --signature).",
        ),
    ] = None,
    description: Annotated[str, typer.Option(help="What is new in this version.")] = "",
    json: Json = False,
) -> None:
    """Upload a model file or folder as a new version; the server loads it before keeping it."""
    if signature is not None and column:
        raise typer.BadParameter("give --signature or --column, not both", param_hint="--column")
    sig = read_signature(signature) if signature else parse_columns(column) if column else None
    label = f"{path.name}.zip" if path.is_dir() else path.name
    with output.transfer(
        f"Uploading {label}", enabled=not json, then="Checking the model on the server"
    ) as progress:
        version = client(ctx).models.upload(
            model, path, flavor=flavor, signature=sig, description=description, progress=progress
        )
    if json:
        output.emit_json(version)
    else:
        output.success(
            f"Created version {version.ref} ({version.flavor}, {len(version.input_names)} inputs)"
        )


def download(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(
            metavar="REF",
            help="NAME (the latest version), NAME@VERSION or NAME@ALIAS; "
            "ORG/PROJECT/ in front if the name alone is ambiguous.",
            show_default=False,
        ),
    ],
    dest: Annotated[
        Path,
        typer.Argument(
            metavar="DEST", help="Folder to write the version's files into (created if needed)."
        ),
    ] = Path("."),
    json: Json = False,
) -> None:
    """Download every file of a model version, each checked against its SHA-256."""
    c = client(ctx)
    version = c.models.resolve(ref)
    with output.transfer(f"Downloading {version.ref}", enabled=not json) as progress:
        c.models.download(version, dest, progress)
    files = [str(dest / f["path"]) for f in version.files]
    if json:
        output.emit_json(
            {"ref": version.ref, "flavor": version.flavor, "path": str(dest), "files": files}
        )
    else:
        output.success(f"Saved {version.ref} ({len(files)} file(s), {version.flavor}) to {dest}")


def register(app: typer.Typer) -> None:
    app.command("upload")(upload)
    app.command("download")(download)
