"""``openmaas task``: benchmark tasks and their fixed splits."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from openmaas.cli import output
from openmaas.cli.options import Json, Limit, Offset, ProjectRef, Yes
from openmaas.cli.session import client
from openmaas.cli.taskspec import Outer, SpecOptions, build_spec, read_spec_file

if TYPE_CHECKING:
    import pandas as pd

app = typer.Typer(
    help="Benchmark tasks: what is predicted from a dataset version, how rows are split "
    "and how models are scored.",
    no_args_is_help=True,
)

TaskType = Literal[
    "binary", "multiclass", "regression", "multitarget", "anomaly", "recommendation", "sequence"
]
TaskId = Annotated[
    str,
    typer.Argument(
        metavar="TASK",
        help="Task id, name (its newest version) or ORG/PROJECT/NAME; NAME@VERSION for another.",
        show_default=False,
    ),
]
DatasetVersion = Annotated[
    str, typer.Option("--dataset-version", help="Dataset version number or 'latest'.")
]
Split = "Split (override --spec-file)"
Config = "Recommendation and sequence tasks"

COLUMNS: list[output.Column] = [
    ("id", "id"),
    ("name", "name"),
    ("v", "version"),
    ("type", "task_type"),
    ("dataset", lambda t: f"{t['dataset_name']} ({t['dataset_id']}) v{t['dataset_version']}"),
    ("targets", lambda t: t["spec"].get("target_columns")),
    ("split", lambda t: describe_outer(t["spec"])),
    ("created", "created_at"),
]


def describe_outer(spec: dict[str, Any]) -> str:
    outer = dict((spec.get("protocol") or {}).get("outer") or {"method": "holdout"})
    method = outer.pop("method", "?")
    if method == "predefined_indices":
        return f"predefined_indices ({len(outer.get('folds', []))} folds)"
    params = " ".join(f"{k}={v}" for k, v in outer.items() if v is not None)
    return f"{method} {params}".strip()


def describe_protocol(spec: dict[str, Any]) -> str:
    protocol = spec.get("protocol") or {}
    parts = [describe_outer(spec), f"{protocol.get('inner_folds', 5)} inner folds"]
    parts.append(f"seed {protocol.get('seed', 0)}")
    by = stratified_by(spec)
    if by is not None:
        parts.append(f"stratified by {by}")
    return "; ".join(parts)


def stratified_by(spec: dict[str, Any]) -> str | None:
    """The column folds are stratified by (mirrors ``TaskSpec.stratify_by``)."""
    protocol = spec.get("protocol") or {}
    outer = protocol.get("outer") or {}
    time_ordered = spec.get("type") == "sequence" or outer.get("method") == "time"
    if not protocol.get("stratify", True) or time_ordered:
        return None
    if protocol.get("stratify_column"):
        return str(protocol["stratify_column"])
    targets = spec.get("target_columns") or []
    return str(targets[0]) if targets and spec.get("type") in ("binary", "multiclass") else None


@app.command("create")
def create(
    ctx: typer.Context,
    project: ProjectRef,
    name: Annotated[str, typer.Option("--name", "-n", help="Task name.", show_default=False)],
    dataset: Annotated[
        int, typer.Option("--dataset", "-d", help="Dataset id.", show_default=False)
    ],
    type: Annotated[TaskType | None, typer.Option("--type", "-t", help="Task type.")] = None,
    target: Annotated[
        list[str] | None,
        typer.Option(metavar="COLUMN", help="Target column; repeat for multitarget."),
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME", help="Metric, the first being primary; repeat. (default: the type's)"
        ),
    ] = None,
    dataset_version: DatasetVersion = "latest",
    outer: Annotated[
        Outer | None,
        typer.Option(
            help="Outer split. (default: inferred from the options below, else holdout)",
            rich_help_panel=Split,
        ),
    ] = None,
    test_fraction: Annotated[
        float | None,
        typer.Option(
            min=0, max=1, help="Test share (holdout, time, group).", rich_help_panel=Split
        ),
    ] = None,
    folds: Annotated[
        int | None, typer.Option(min=2, help="Outer folds (kfold, group).", rich_help_panel=Split)
    ] = None,
    inner_folds: Annotated[
        int | None, typer.Option(min=2, help="Inner (tuning) folds.", rich_help_panel=Split)
    ] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, help="Split seed.", rich_help_panel=Split)
    ] = None,
    group_column: Annotated[
        str | None, typer.Option(help="Group column (group split).", rich_help_panel=Split)
    ] = None,
    time_column: Annotated[
        str | None,
        typer.Option(help="Time column (time split; sequence tasks).", rich_help_panel=Split),
    ] = None,
    fold_column: Annotated[
        str | None,
        typer.Option(
            help="Column naming each row's fold (predefined_column).", rich_help_panel=Split
        ),
    ] = None,
    stratify: Annotated[
        bool | None,
        typer.Option(
            "--stratify/--no-stratify",
            help="Stratify folds by the target (classification). (default: yes)",
            rich_help_panel=Split,
        ),
    ] = None,
    stratify_column: Annotated[
        str | None, typer.Option(help="Stratify by this column instead.", rich_help_panel=Split)
    ] = None,
    user_column: Annotated[
        str | None, typer.Option(help="Recommendation: user column.", rich_help_panel=Config)
    ] = None,
    item_column: Annotated[
        str | None, typer.Option(help="Recommendation: item column.", rich_help_panel=Config)
    ] = None,
    rating_column: Annotated[
        str | None,
        typer.Option(help="Recommendation: rating (the target).", rich_help_panel=Config),
    ] = None,
    implicit: Annotated[
        bool | None,
        typer.Option(
            "--implicit/--explicit",
            help="Recommendation: implicit feedback (clicks) or explicit ratings.",
            rich_help_panel=Config,
        ),
    ] = None,
    series_column: Annotated[
        str | None, typer.Option(help="Sequence: series column.", rich_help_panel=Config)
    ] = None,
    context_length: Annotated[
        int | None, typer.Option(min=1, help="Sequence: past steps seen.", rich_help_panel=Config)
    ] = None,
    horizon: Annotated[
        int | None, typer.Option(min=1, help="Sequence: steps predicted.", rich_help_panel=Config)
    ] = None,
    spec_file: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="A JSON task spec; options override it."),
    ] = None,
    description: Annotated[str, typer.Option(help="What the task is about.")] = "",
    json: Json = False,
) -> None:
    """Define a task on a dataset version; its splits are computed now and never change."""
    options = SpecOptions(
        type=type,
        targets=target,
        metrics=metric,
        outer=outer,
        test_fraction=test_fraction,
        folds=folds,
        inner_folds=inner_folds,
        seed=seed,
        group_column=group_column,
        time_column=time_column,
        fold_column=fold_column,
        stratify=stratify,
        stratify_column=stratify_column,
        user_column=user_column,
        item_column=item_column,
        rating_column=rating_column,
        implicit=implicit,
        series_column=series_column,
        context_length=context_length,
        horizon=horizon,
    )
    spec = build_spec(options, read_spec_file(spec_file) if spec_file else None)
    version: int | str = int(dataset_version) if dataset_version.isdigit() else dataset_version
    task = client(ctx).tasks.create(
        project, name, dataset, spec=spec, dataset_version=version, description=description
    )
    if json:
        output.emit_json(task)
    else:
        output.success(
            f"Created task {task.id} ({task.name}, {task.task_type}) on dataset "
            f"{task.dataset_name} v{task.dataset_version}: {describe_protocol(task.spec)}"
        )


@app.command("list")
def list_(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option(help="Project id or ORG/NAME.")] = None,
    dataset: Annotated[int | None, typer.Option(help="Dataset id.")] = None,
    type: Annotated[TaskType | None, typer.Option(help="Task type.")] = None,
    q: Annotated[str | None, typer.Option("--q", help="Name contains.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    json: Json = False,
) -> None:
    """List the tasks you can read."""
    page = client(ctx).tasks.list(
        project=project, dataset=dataset, type=type, q=q, limit=limit, offset=offset
    )
    if json:
        output.emit_json(page.items)
        return
    output.table(page.items, COLUMNS, empty="No tasks.")
    if page.total > len(page.items) + offset:
        output.note(f"showing {len(page.items)} of {page.total}; use --offset / --limit for more")


@app.command("show")
def show(ctx: typer.Context, task_id: TaskId, json: Json = False) -> None:
    """Show a task's definition."""
    task = client(ctx).tasks.get(task_id)
    if json:
        output.emit_json(task)
        return
    spec = task.spec
    info: dict[str, Any] = {
        "id": task.id,
        "name": task.name,
        "version": task.version,
        "project": task.project_id,
        "type": task.task_type,
        "dataset": f"{task.dataset_name} (id {task.dataset_id}) v{task.dataset_version}",
        "rows": task.n_rows,
        "targets": spec.get("target_columns"),
        "metrics": spec.get("metrics"),
        "protocol": describe_protocol(spec),
    }
    for extra in ("recommendation", "sequence"):
        if spec.get(extra):
            info[extra] = spec[extra]
    info |= {"description": task.description, "created": task.created_at}
    output.details(info)


@app.command("update")
def update(
    ctx: typer.Context,
    task_id: TaskId,
    description: Annotated[str | None, typer.Option(help="What the task is about.")] = None,
    licence: Annotated[str | None, typer.Option(help="Licence.")] = None,
    citation: Annotated[str | None, typer.Option(help="How to cite it.")] = None,
    json: Json = False,
) -> None:
    """Edit a task's description, licence or citation; its definition is immutable."""
    changes = {
        k: v
        for k, v in {"description": description, "licence": licence, "citation": citation}.items()
        if v is not None
    }
    if not changes:
        raise typer.BadParameter("nothing to change: give --description, --licence or --citation")
    task = client(ctx).tasks.update(task_id, **changes)
    if json:
        output.emit_json(task)
    else:
        output.success(f"Updated task {task.id} ({task.name})")


@app.command("rebase")
def rebase(
    ctx: typer.Context,
    task_id: TaskId,
    dataset_version: DatasetVersion = "latest",
    json: Json = False,
) -> None:
    """New task version on a newer dataset version; existing rows keep their folds."""
    version: int | str = int(dataset_version) if dataset_version.isdigit() else dataset_version
    task = client(ctx).tasks.rebase(task_id, version)
    if json:
        output.emit_json(task)
    else:
        output.success(
            f"Created task {task.id} ({task.name} v{task.version}) on dataset "
            f"{task.dataset_name} v{task.dataset_version}"
        )


def fold_summary(splits: pd.DataFrame) -> list[dict[str, Any]]:
    """Per outer fold: training and test rows, and the size of each inner validation fold."""
    outer = splits["outer"]
    n_folds = int(outer.max()) + 1 if len(outer) else 0
    rows = []
    for f in range(n_folds):
        inner = splits[f"inner_{f}"]
        n_inner = int(inner.max()) + 1 if len(inner) else 0
        rows.append(
            {
                "fold": f,
                "train": int((inner != -1).sum()),
                "test": int((outer == f).sum()),
                "inner_validation": [int((inner == i).sum()) for i in range(n_inner)],
            }
        )
    return rows


@app.command("splits")
def splits(
    ctx: typer.Context,
    task_id: TaskId,
    dest: Annotated[
        Path | None,
        typer.Argument(
            help="Save the fold of every row here as Parquet (row, outer, inner_0 ...).",
            show_default=False,
        ),
    ] = None,
    json: Json = False,
) -> None:
    """Save a task's splits, or summarise their fold sizes."""
    frame = client(ctx).tasks.splits(task_id)
    if dest is not None:
        frame.to_parquet(dest, index=False)
        if json:
            output.emit_json({"path": str(dest), "rows": len(frame)})
        else:
            output.success(f"Saved the splits of {len(frame)} rows to {dest}")
        return
    summary = fold_summary(frame)
    if json:
        output.emit_json(summary)
        return
    columns: list[output.Column] = [
        ("outer fold", "fold"),
        ("train rows", "train"),
        ("test rows", "test"),
        ("inner validation rows", lambda r: " / ".join(map(str, r["inner_validation"]))),
    ]
    output.table(summary, columns, title=f"Task {task_id}: {len(frame)} rows", empty="No folds.")


@app.command("delete")
def delete(ctx: typer.Context, task_id: TaskId, yes: Yes = False) -> None:
    """Delete a task version and its splits."""
    c = client(ctx)
    task = c.tasks.get(task_id)
    if not yes:
        typer.confirm(f"Delete task {task.id} ({task.name} v{task.version})?", abort=True, err=True)
    c.tasks.delete(task)
    output.success(f"Deleted task {task.id} ({task.name} v{task.version})")
