"""``openmaas model compress``: a smaller or faster copy of a version, as a new version.

Registered on the ``model`` command group by :mod:`openmaas.cli.models`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from openmaas.cli import output
from openmaas.cli.datasets import human_bytes
from openmaas.cli.options import Json
from openmaas.cli.session import client
from openmaas.errors import InvalidInput

Ref = Annotated[
    str,
    typer.Argument(
        metavar="REF", help="The version: NAME@VERSION, NAME@ALIAS or NAME.", show_default=False
    ),
]


def compress(
    ctx: typer.Context,
    ref: Ref,
    onnx: Annotated[bool, typer.Option("--onnx", help="Export to ONNX.")] = False,
    quantize: Annotated[
        bool, typer.Option("--quantize", help="int8 weights (a dnn, or its ONNX export).")
    ] = False,
    distill: Annotated[
        bool, typer.Option("--distill", help="Train a small student on the model's predictions.")
    ] = False,
    student: Annotated[
        str, typer.Option(help="The student of --distill: lightgbm or mlp.")
    ] = "lightgbm",
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            help="Task (id or name) to evaluate on (and distill from) when the version has none.",
        ),
    ] = None,
    wait_: Annotated[bool, typer.Option("--wait", "-w", help="Wait and show the report.")] = False,
    json: Json = False,
) -> None:
    """Compress a version into a new one: --onnx, --quantize or --distill. With --wait,
    print what it gained and cost: size, latency per row, the task's metric."""
    chosen = [k for k, on in (("onnx", onnx), ("quantize", quantize), ("distill", distill)) if on]
    if len(chosen) != 1:
        raise InvalidInput("give one of --onnx, --quantize, --distill")
    kind = chosen[0]
    params: dict[str, Any] = {"student": student} if kind == "distill" else {}
    c = client(ctx)
    if task is not None:
        params["task_id"] = c.tasks.resolve(task)
    job = c.models.transform(ref, kind, **params)
    if not wait_:
        if json:
            output.emit_json(job)
        else:
            output.success(f"Queued {kind} of {job.model}@{job.version}: transform job {job.id}")
        return
    try:
        version = job.wait()
    except KeyboardInterrupt:
        output.note(f"stopped waiting; transform job {job.id} goes on")
        raise typer.Exit(130) from None
    if json:
        output.emit_json(version)
        return
    output.success(
        f"Created version {version.ref} ({version.flavor}) by {kind} of {job.model}@{job.version}"
    )
    output.table(report_rows(version.transform["report"]), REPORT_COLUMNS)


REPORT_COLUMNS: list[output.Column] = [
    ("", "what"),
    ("before", "before"),
    ("after", "after"),
    ("change", "change"),
]


def report_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report as table rows: size, latency per row (batch and one row), metric."""
    size, batch, one = (
        report["size_bytes"], report["latency_per_row_s"], report["latency_one_row_s"]
    )  # fmt: skip
    rows = [
        {"what": "size", "before": human_bytes(size["before"]),
         "after": human_bytes(size["after"]), "change": _times(size["ratio"], "smaller")},
        {"what": f"latency per row ({report['latency_batch_rows']} rows)",
         "before": _us(batch["before"]), "after": _us(batch["after"]),
         "change": _times(batch["speedup"], "faster")},
        {"what": "latency of one row", "before": _us(one["before"]), "after": _us(one["after"]),
         "change": _times(one["speedup"], "faster")},
    ]  # fmt: skip
    metric = report.get("metric")
    if metric:
        rows.append({
            "what": f"{metric['name']} ({report['eval_rows']} test rows)",
            "before": f"{metric['before']:.4f}", "after": f"{metric['after']:.4f}",
            "change": f"{metric['change']:+.4f}",
        })  # fmt: skip
    return rows


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def _times(ratio: float | None, word: str) -> str:
    return "" if ratio is None else f"{ratio:.1f}x {word}"


def register(app: typer.Typer) -> None:
    app.command("compress")(compress)
