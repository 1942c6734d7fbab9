"""``openmaas dataset upload | append | download``: files in and out, with progress bars."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from openmaas.cli import output
from openmaas.cli.options import Json, ProjectRef
from openmaas.cli.session import client

UploadFormat = Literal["csv", "parquet", "jsonl"]

File = Annotated[
    Path,
    typer.Argument(
        metavar="FILE",
        exists=True,
        dir_okay=False,
        readable=True,
        help="CSV, Parquet or JSON Lines file.",
        show_default=False,
    ),
]
FormatOpt = Annotated[
    UploadFormat | None,
    typer.Option("--format", "-f", help="File format. (default: from the file's suffix)"),
]
DatasetId = Annotated[int, typer.Argument(metavar="ID", help="Dataset id.", show_default=False)]


def parse_types(pairs: list[str] | None) -> dict[str, str] | None:
    """``["zip=categorical", ...]`` as ``{"zip": "categorical", ...}``."""
    if not pairs:
        return None
    types: dict[str, str] = {}
    for pair in pairs:
        column, sep, kind = pair.rpartition("=")
        if not sep or not column or not kind:
            raise typer.BadParameter(f"{pair!r} is not COLUMN=KIND", param_hint="--type")
        types[column] = kind
    return types


def upload(
    ctx: typer.Context,
    project: ProjectRef,
    file: File,
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Dataset name. (default: the file name's stem)"),
    ] = None,
    format: FormatOpt = None,
    description: Annotated[str | None, typer.Option(help="What the data is.")] = None,
    licence: Annotated[str | None, typer.Option(help="How it may be used, e.g. CC-BY-4.0.")] = None,
    citation: Annotated[str | None, typer.Option(help="How to cite it.")] = None,
    source: Annotated[str | None, typer.Option(help="Where it comes from (URL, paper).")] = None,
    tag: Annotated[
        list[str] | None, typer.Option(metavar="TAG", help="A tag; repeat for several.")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="The usual prediction target (profiled against).")
    ] = None,
    type_: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            metavar="COLUMN=KIND",
            help="Override an inferred column kind (numeric, categorical, boolean, datetime, "
            "text); repeat for several.",
        ),
    ] = None,
    json: Json = False,
) -> None:
    """Upload a file as version 1 of a new dataset."""
    types = parse_types(type_)
    c = client(ctx)
    with output.transfer(
        f"Uploading {file.name}", enabled=not json, then="Reading and profiling on the server"
    ) as progress:
        dataset = c.datasets.upload(
            project,
            file,
            name=name or file.stem,
            format=format,
            description=description,
            source=source,
            licence=licence,
            citation=citation,
            tags=tag,
            target=target,
            types=types,
            progress=progress,
        )
    version = c.datasets.version(dataset.id, dataset.latest_version)
    if json:
        output.emit_json({"dataset": dataset, "version": version})
    else:
        output.success(
            f"Created dataset {dataset.id} ({dataset.project}/{dataset.name}): "
            f"{version.n_rows} rows, {version.n_columns} columns"
        )


def append(
    ctx: typer.Context,
    dataset_id: DatasetId,
    file: File,
    format: FormatOpt = None,
    note: Annotated[str, typer.Option(help="What changed, kept with the version.")] = "",
    json: Json = False,
) -> None:
    """Append a file's rows as a new version of a dataset."""
    with output.transfer(
        f"Uploading {file.name}", enabled=not json, then="Reading and profiling on the server"
    ) as progress:
        version = client(ctx).datasets.append(
            dataset_id, file, format=format, note=note, progress=progress
        )
    if json:
        output.emit_json(version)
    else:
        output.success(
            f"Created version {version.version} of dataset {dataset_id}: {version.n_rows} rows"
        )


def download(
    ctx: typer.Context,
    dataset_id: DatasetId,
    dest: Annotated[
        Path,
        typer.Argument(
            metavar="DEST",
            help="File to write, or an existing folder to write NAME-vVERSION.FORMAT into.",
            show_default=False,
        ),
    ],
    version: Annotated[
        str, typer.Option("--version", "-v", help="Version number or 'latest'.")
    ] = "latest",
    format: Annotated[
        Literal["parquet", "csv"] | None,
        typer.Option("--format", "-f", help="parquet or csv. (default: from DEST's suffix)"),
    ] = None,
    json: Json = False,
) -> None:
    """Download a version of a dataset as Parquet or CSV."""
    c = client(ctx)
    row = c.datasets.version(dataset_id, version)
    if format is None:
        format = "csv" if dest.suffix.lower() == ".csv" else "parquet"
    if dest.is_dir():
        dest = dest / f"{c.datasets.get(dataset_id).name}-v{row.version}.{format}"
    with output.transfer(f"Downloading {dest.name}", enabled=not json) as progress:
        c.datasets.download(dataset_id, dest, version=row.version, format=format, progress=progress)
    size = dest.stat().st_size
    if json:
        output.emit_json(
            {"path": str(dest), "version": row.version, "format": format, "bytes": size}
        )
    else:
        output.success(f"Saved version {row.version} of dataset {dataset_id} to {dest}")


def register(app: typer.Typer) -> None:
    app.command("upload")(upload)
    app.command("append")(append)
    app.command("download")(download)
