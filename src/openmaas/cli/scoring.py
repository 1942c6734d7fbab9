"""``openmaas score``: a model's predictions for a whole dataset or file, as a server job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from openmaas.cli import output
from openmaas.cli.options import Json
from openmaas.cli.session import client
from openmaas.client import ScoringJob
from openmaas.errors import InvalidInput


def score(
    ctx: typer.Context,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            metavar="REF",
            help="Model version: name@3, name@production, "
            "org/project/name@alias (a bare name is the latest version).",
        ),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option("--endpoint", "-e", help="Score with the version this endpoint serves most."),
    ] = None,
    dataset: Annotated[
        int | None, typer.Option("--dataset", "-d", metavar="ID", help="Dataset id to score.")
    ] = None,
    dataset_version: Annotated[
        str, typer.Option("--dataset-version", metavar="N", help="Dataset version or 'latest'.")
    ] = "latest",
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", exists=True, dir_okay=False, help="A CSV, Parquet or JSON Lines file."
        ),
    ] = None,
    format: Annotated[
        str | None,
        typer.Option(help="The file's format (csv, parquet, jsonl) if its suffix does not say."),
    ] = None,
    job_id: Annotated[
        int | None,
        typer.Option(
            "--job", "-j", metavar="ID", help="An existing scoring job: show, wait, save."
        ),
    ] = None,
    wait_: Annotated[bool, typer.Option("--wait", "-w", help="Wait for the job to end.")] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", dir_okay=False, help="Save the result here (.parquet or .csv); waits."
        ),
    ] = None,
    json: Json = False,
) -> None:
    """Score every row of a dataset version or a file with a model version or an endpoint
    (or, with --job, follow a scoring job queued before).

    The server checks the request first (version, dataset, the model's columns), then
    a worker scores the rows in batches; the result holds each row's index, prediction
    and class probabilities.
    """
    c = client(ctx)
    if job_id is not None:
        job = c.scoring.get(job_id)
    else:
        if (model is None) == (endpoint is None):
            raise InvalidInput("give --model or --endpoint (one of them), or --job")
        if (dataset is None) == (file is None):
            raise InvalidInput("give --dataset or --file (one of them)")
        version: int | str = int(dataset_version) if dataset_version.isdigit() else dataset_version
        job = c.scoring.score(
            model, endpoint=endpoint, dataset=dataset, dataset_version=version, file=file,
            format=format,
        )  # fmt: skip
    if not (wait_ or out):
        if json:
            output.emit_json(job)
        else:
            verb = "Queued" if job_id is None else f"State {job.state}:"
            output.success(f"{verb} scoring job {job.id}: {_what(job)}")
            output.note(f"wait and save it with `openmaas score --job {job.id} --out FILE`")
        return
    try:
        ended = job.wait()
    except KeyboardInterrupt:
        output.note(f"stopped waiting; scoring job {job.id} goes on")
        raise typer.Exit(130) from None
    if out is not None:
        ended.download(out)
    if json:
        output.emit_json(ended)
        return
    summary = ended.summary
    saved = f"; saved to {out}" if out is not None else ""
    output.success(
        f"Scoring job {ended.id} scored {summary.get('rows', 0)} rows in "
        f"{summary.get('seconds', 0):.1f} s: {_what(ended)}{saved}"
    )


def _what(job: ScoringJob) -> str:
    source = job.input
    rows = (
        f"dataset {source.get('dataset')} v{source.get('dataset_version')}"
        if source.get("source") == "dataset"
        else f"file {source.get('filename') or '(upload)'}"
    )
    via = f" via endpoint {job.endpoint}" if job.endpoint else ""
    return f"{rows} with {job.model}@{job.version}{via}"
