"""``openmaas run`` and ``openmaas leaderboard``: train on tasks, follow runs, rank them."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from openmaas.cli import output
from openmaas.cli.options import Json, Limit, Offset, Yes
from openmaas.cli.session import client
from openmaas.client import Algorithm, Client, Run, RunFailed

app = typer.Typer(
    help="Training runs: queue one on a task, follow its progress and logs, get its files.",
    no_args_is_help=True,
)

State = Literal["queued", "running", "succeeded", "failed", "cancelled"]
RunId = Annotated[int, typer.Argument(metavar="ID", help="Run id.", show_default=False)]
TASK_HELP = "Task id, name (its newest version) or ORG/PROJECT/NAME; NAME@VERSION for another."
TaskId = Annotated[str, typer.Argument(metavar="TASK", help=TASK_HELP, show_default=False)]
PARAMS_WIDTH = 48


# Formatting ----------------------------------------------------------------------------


def number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"


def mean_std(mean: float | None, std: float | None) -> str:
    """``0.9712 ± 0.0081``; just the mean with one fold, empty without a score."""
    if mean is None:
        return ""
    return number(mean) if std is None else f"{number(mean)} ± {number(std)}"


def score_text(metric: str, mean: float | None, std: float | None) -> str:
    """``accuracy 0.9712 ± 0.0081``, or empty before there is a score."""
    return "" if mean is None else f"{metric} {mean_std(mean, std)}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def clock(at: str) -> str:
    """An ISO timestamp as local ``HH:MM:SS``."""
    try:
        return datetime.fromisoformat(at).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return at


def value_text(value: Any) -> str:
    """A parameter value as typed on the command line: ``null``, ``true``, ``0.1``."""
    if value is None or isinstance(value, bool):
        return jsonlib.dumps(value)
    return output.cell(value)


def params_text(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={value_text(v)}" for k, v in params.items())


def key_params(params: Mapping[str, Any], defaults: Mapping[str, Any] | None) -> str:
    """The hyperparameters that differ from the algorithm's defaults, shortened to fit a cell."""
    changed = {
        k: v for k, v in params.items() if defaults is None or k not in defaults or defaults[k] != v
    }
    if not changed:
        return "defaults"
    text = params_text(dict(sorted(changed.items())))
    return text if len(text) <= PARAMS_WIDTH else text[: PARAMS_WIDTH - 1] + "…"


def metric_rows(run: Run) -> list[dict[str, Any]]:
    """One row per metric: mean ± std over outer folds, and each fold's value."""
    rows = []
    for name, summary in (run.metrics or {}).items():
        if not isinstance(summary, dict):
            continue
        folds = summary.get("folds") or []
        rows.append(
            {
                "metric": f"{name} (primary)" if name == run.metric else name,
                "mean ± std": mean_std(summary.get("mean"), summary.get("std")),
                "folds": "  ".join("-" if v is None else number(v) for v in folds),
            }
        )
    return rows


def print_metrics(run: Run) -> None:
    rows = metric_rows(run)
    if rows:
        columns: list[output.Column] = [(k, k) for k in ("metric", "mean ± std", "folds")]
        output.table(rows, columns)


def describe_progress(progress: Mapping[str, Any]) -> str:
    """The latest training event in words, e.g. ``fold_1/inner_2: epoch 40``."""
    event = progress.get("event")
    key = progress.get("key", "")
    if event == "fold_start":
        return f"fold {progress.get('fold', 0) + 1} of {progress.get('folds', '?')}"
    if event == "fit_start":
        return f"{key}: fitting on {progress.get('rows', '?')} rows"
    if event == "epoch":
        return f"{key}: epoch {progress.get('epoch')}"
    if event == "fit_done":
        return f"{key}: fitted in {progress.get('seconds', 0):.1f} s"
    if event == "fold_done":
        return f"fold {progress.get('fold', 0) + 1} of {progress.get('folds', '?')} done"
    if event == "run_done":
        return "finishing"
    return "starting"


# Parameters ----------------------------------------------------------------------------

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _as(kind: str, value: str) -> Any:
    if kind == "integer":
        return int(value)
    if kind == "number":
        return float(value)
    if kind == "boolean":
        if value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ValueError(value)
    if kind == "string":
        return value
    raise ValueError(kind)


def coerce(value: str, hyperparameter: Mapping[str, Any] | None) -> Any:
    """``value`` as the hyperparameter's JSON type (``"200"`` -> ``200``, ``"none"`` -> None).

    What does not convert is sent as given, and the server says what is allowed.
    """
    if hyperparameter is None:
        return value
    kinds = hyperparameter.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "null" in kinds and value.lower() in ("null", "none"):
        return None
    for kind in kinds:
        try:
            return _as(str(kind), value)
        except ValueError:
            continue
    return value


def parse_params(pairs: list[str], algorithm: Algorithm | None) -> dict[str, Any]:
    """``["n_estimators=200", ...]`` as ``{"n_estimators": 200}``, typed by the catalog."""
    known = {hp["name"]: hp for hp in algorithm.hyperparameters} if algorithm else {}
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise typer.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--param")
        if name in params:
            raise typer.BadParameter(f"{name!r} is given twice", param_hint="--param")
        params[name] = coerce(value, known.get(name))
    return params


# Progress ------------------------------------------------------------------------------


class RunProgress:
    """Rich bars on stderr for a run being waited for: outer folds, and epochs of the fit."""

    def __init__(self, bar: Progress, run: Run) -> None:
        self.bar = bar
        self.title = f"run {run.id} {run.algorithm}"
        self.folds: TaskID = bar.add_task(f"{self.title}: queued", total=None)
        self.epochs: TaskID = bar.add_task("", total=None, visible=False)
        self.n_folds: int | None = None

    def __call__(self, run: Run) -> None:
        p = run.progress or {}
        if isinstance(p.get("folds"), int):
            self.n_folds = p["folds"]
        fold = p.get("fold")
        done: int | None = None
        if p.get("event") == "fold_done" and isinstance(fold, int):
            done = fold + 1
        elif isinstance(fold, int):
            done = fold if fold >= 0 else self.n_folds  # -1: the final refit, after all folds
        if run.state == "succeeded" or p.get("event") == "run_done":
            if self.n_folds is None:  # ended before a progress report came by
                folds = next(iter((run.metrics or {}).values()), {}).get("folds")
                self.n_folds = len(folds) if isinstance(folds, list) else None
            done = self.n_folds
        if run.state == "queued":
            text = "queued, waiting for a worker"
        elif run.done:
            text = run.state
        else:
            text = describe_progress(p)
        self.bar.update(self.folds, description=f"{self.title}: {text}", total=self.n_folds)
        if done is not None:
            self.bar.update(self.folds, completed=done)
        if p.get("event") == "epoch":
            self.bar.update(
                self.epochs,
                description=f"  {p.get('key', '')} epochs",
                completed=int(p.get("epoch") or 0),
                visible=True,
            )
        elif p.get("event") in ("fit_start", "fold_done", "run_done") or run.done:
            self.bar.update(self.epochs, visible=False, completed=0)


@contextmanager
def run_progress(run: Run, *, enabled: bool) -> Iterator[RunProgress | None]:
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=output.stderr(),
    ) as bar:
        yield RunProgress(bar, run)


def wait(c: Client, run: Run, *, json: bool) -> Run:
    """Wait for ``run`` with a progress display; exit 1 with the server's error if it failed."""
    try:
        with run_progress(run, enabled=not json) as on_progress:
            ended = c.runs.wait(run, on_progress=on_progress, raise_on_failure=False)
    except KeyboardInterrupt:
        output.note(f"stopped waiting; run {run.id} goes on (`openmaas run logs -f {run.id}`)")
        raise typer.Exit(130) from None
    if json:
        output.emit_json(ended)
    if ended.state != "succeeded":
        raise RunFailed(ended)
    if not json:
        output.success(
            f"Run {ended.id} succeeded in {duration(ended.wall_time_s)}: "
            f"{ended.metric} {mean_std(ended.score, ended.score_std)}"
        )
        print_metrics(ended)
    return ended


# Commands ------------------------------------------------------------------------------


@app.command("create")
def create(
    ctx: typer.Context,
    task: Annotated[str, typer.Option("--task", "-t", help=TASK_HELP, show_default=False)],
    algo: Annotated[
        str,
        typer.Option("--algo", "-a", help="Algorithm (`openmaas algo list`).", show_default=False),
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="NAME=VALUE",
            help="A hyperparameter (`openmaas algo show ALGO`); repeat for several. "
            "'none' sets a nullable one to null.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Training seed.")] = 0,
    name: Annotated[str, typer.Option("--name", "-n", help="A name for the run.")] = "",
    parent: Annotated[
        int | None,
        typer.Option(help="Warm-start from this succeeded run of the same algorithm."),
    ] = None,
    memory_limit: Annotated[
        int | None,
        typer.Option(
            "--memory-limit",
            min=1,
            metavar="MB",
            help="The run's own memory limit in MB; a run over it fails cleanly "
            "(the worker's own limit still applies if lower).",
        ),
    ] = None,
    divergence_retries: Annotated[
        int,
        typer.Option(
            "--divergence-retries",
            min=0,
            max=5,
            help="If training diverges, retry with the learning rate divided by 10, "
            "up to this many times.",
        ),
    ] = 0,
    wait_: Annotated[
        bool,
        typer.Option("--wait", "-w", help="Wait for the run to end, showing its progress."),
    ] = False,
    json: Json = False,
) -> None:
    """Queue a training run of an algorithm on a task."""
    c = client(ctx)
    params = parse_params(param, c.algorithms.get(algo)) if param else {}
    run = c.runs.create(
        task, algo, params, seed=seed, name=name, parent=parent,
        memory_limit_mb=memory_limit, divergence_retries=divergence_retries,
    )  # fmt: skip
    if wait_:
        wait(c, run, json=json)
    elif json:
        output.emit_json(run)
    else:
        output.success(
            f"Queued run {run.id} ({run.algorithm} on task {run.task_id}, {run.task_name}); "
            f"follow it with `openmaas run logs -f {run.id}`"
        )


@app.command("wait")
def wait_command(ctx: typer.Context, run_id: RunId, json: Json = False) -> None:
    """Wait for a run to end, showing its progress, then its metrics."""
    c = client(ctx)
    wait(c, c.runs.get(run_id), json=json)


@app.command("show")
def show(ctx: typer.Context, run_id: RunId, json: Json = False) -> None:
    """Show a run: its request, state, score and metrics per fold."""
    run = client(ctx).runs.get(run_id)
    if json:
        output.emit_json(run)
        return
    info: dict[str, Any] = {
        "id": run.id,
        "name": run.name or None,
        "task": f"{run.task_name} (id {run.task_id})",
        "algorithm": run.algorithm,
        "params": params_text(run.params),
        "seed": run.seed,
        "kind": run.kind,
        "state": run.state,
    }
    if run.state == "running":
        info["progress"] = describe_progress(run.progress or {})
    info |= {
        "score": score_text(run.metric, run.score, run.score_std),
        "contributor": run.contributor,
        "parent run": run.parent_id,
        "created": run.created_at,
        "finished": run.finished_at,
        "wall time": duration(run.wall_time_s),
        "peak memory": None if run.peak_rss_mb is None else f"{run.peak_rss_mb:.0f} MB",
    }
    data = run.to_dict()
    if data.get("memory_limit_mb"):
        info["memory limit"] = f"{data['memory_limit_mb']} MB"
    if data.get("divergence_retries"):
        info["divergence retries"] = data["divergence_retries"]
    divergence = (run.environment or {}).get("divergence")
    if divergence:
        info["learning rate"] = (
            f"{divergence['learning_rate']:g} (asked {divergence['requested_learning_rate']:g}; "
            f"lowered after {len(divergence['retries'])} diverged attempt(s))"
        )
    if run.error:
        info["error"] = run.error
    output.details({k: v for k, v in info.items() if v not in (None, "")})
    print_metrics(run)


RUN_COLUMNS: list[output.Column] = [
    ("id", "id"),
    ("task", lambda r: f"{r['task_name']} ({r['task_id']})"),
    ("algorithm", "algorithm"),
    ("state", "state"),
    ("score", lambda r: score_text(r["metric"], r["score"], r["score_std"])),
    ("contributor", "contributor"),
    ("created", "created_at"),
]


@app.command("list")
def list_(
    ctx: typer.Context,
    task: Annotated[str | None, typer.Option("--task", "-t", help=TASK_HELP)] = None,
    project: Annotated[str | None, typer.Option(help="Project id or ORG/NAME.")] = None,
    algo: Annotated[str | None, typer.Option("--algo", "-a", help="Algorithm.")] = None,
    state: Annotated[State | None, typer.Option(help="State.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    json: Json = False,
) -> None:
    """List the runs you can read, newest first."""
    page = client(ctx).runs.list(
        task=task, project=project, algorithm=algo, state=state, limit=limit, offset=offset
    )
    if json:
        output.emit_json(page.items)
        return
    output.table(page.items, RUN_COLUMNS, empty="No runs.")
    if page.total > len(page.items) + offset:
        output.note(f"showing {len(page.items)} of {page.total}; use --offset / --limit for more")


@app.command("logs")
def logs(
    ctx: typer.Context,
    run_id: RunId,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until the run ends.")
    ] = False,
    json: Annotated[
        bool, typer.Option("--json", help="Print JSON (one object a line with --follow).")
    ] = False,
) -> None:
    """Print a run's log."""
    c = client(ctx)
    lines = c.runs.iter_logs(run_id, follow=follow)
    if json and not follow:
        output.emit_json(list(lines))
        return
    try:
        for line in lines:
            if json:
                typer.echo(jsonlib.dumps(line.to_dict(), default=str, ensure_ascii=False))
            else:
                typer.echo(f"{clock(line.at)} {line.level:<7} {line.message}")
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if not follow:
        return
    run = c.runs.get(run_id)
    if not json:
        output.note(f"run {run.id} {run.state}" + (f": {run.error}" if run.error else ""))


@app.command("metrics")
def metrics(
    ctx: typer.Context,
    run_id: RunId,
    key: Annotated[
        str | None, typer.Option(help="Only this series, e.g. fold_0/valid_loss.")
    ] = None,
    json: Json = False,
) -> None:
    """Summarise a run's learning curves and logged values (first, last, best of each)."""
    series = client(ctx).runs.history(run_id, key)
    if json:
        output.emit_json({k: [list(p) for p in v] for k, v in series.items()})
        return
    rows = [
        {
            "series": k,
            "steps": len(v),
            "first": number(v[0][1]),
            "last": number(v[-1][1]),
            "min": number(min(x for _, x in v)),
            "max": number(max(x for _, x in v)),
        }
        for k, v in series.items()
        if v
    ]
    columns: list[output.Column] = [
        (c, c) for c in ("series", "steps", "first", "last", "min", "max")
    ]
    output.table(rows, columns, empty="No curves or logged values.")


@app.command("artifacts")
def artifacts(ctx: typer.Context, run_id: RunId, json: Json = False) -> None:
    """List a run's files (predictions, curves, models, log)."""
    files = client(ctx).runs.artifacts(run_id)
    if json:
        output.emit_json(files)
        return
    columns: list[output.Column] = [
        ("name", "name"),
        ("bytes", "size_bytes"),
        ("type", "media_type"),
        ("sha256", lambda a: str(a["digest"])[:12]),
    ]
    output.table(files, columns, empty="No files.")


@app.command("download")
def download(
    ctx: typer.Context,
    run_id: RunId,
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME", help="File name, e.g. predictions.parquet.", show_default=False
        ),
    ],
    dest: Annotated[
        Path,
        typer.Argument(metavar="DEST", help="File to write, or an existing folder to write into."),
    ] = Path("."),
    json: Json = False,
) -> None:
    """Download one of a run's files."""
    with output.transfer(f"Downloading {name}", enabled=not json) as progress:
        path = client(ctx).runs.download_artifact(run_id, name, dest, progress)
    if json:
        output.emit_json({"path": str(path), "bytes": path.stat().st_size})
    else:
        output.success(f"Saved {name} of run {run_id} to {path}")


@app.command("cancel")
def cancel(ctx: typer.Context, run_id: RunId, json: Json = False) -> None:
    """Stop a queued or running run."""
    run = client(ctx).runs.cancel(run_id)
    if json:
        output.emit_json(run)
    elif run.state == "cancelled":
        output.success(f"Cancelled run {run.id}")
    elif run.done:
        output.note(f"run {run.id} had already ended: {run.state}")
    else:
        output.success(f"Asked run {run.id} to stop; its worker stops it shortly")


@app.command("delete")
def delete(ctx: typer.Context, run_id: RunId, yes: Yes = False) -> None:
    """Delete a run and its results (stopping it first)."""
    c = client(ctx)
    run = c.runs.get(run_id)
    if not yes:
        typer.confirm(
            f"Delete run {run.id} ({run.algorithm} on {run.task_name})?", abort=True, err=True
        )
    c.runs.delete(run_id)
    output.success(f"Deleted run {run.id}")


# Leaderboard ---------------------------------------------------------------------------


def leaderboard(
    ctx: typer.Context,
    task: TaskId,
    algo: Annotated[str | None, typer.Option("--algo", "-a", help="Only this algorithm.")] = None,
    contributor: Annotated[
        str | None, typer.Option(help="Only this contributor's runs (username).")
    ] = None,
    org: Annotated[
        str | None, typer.Option(help="Only runs by members of this organisation.")
    ] = None,
    kind: Annotated[
        Literal["platform", "external", "logged"] | None,
        typer.Option(help="Only runs of this kind."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Show at most this many.")] = 20,
    offset: Offset = 0,
    json: Json = False,
) -> None:
    """Rank a task's succeeded runs by its primary metric (mean ± std over outer folds)."""
    c = client(ctx)
    board = c.runs.leaderboard(
        task, algorithm=algo, contributor=contributor, org=org, kind=kind,
        limit=limit, offset=offset,
    )  # fmt: skip
    if json:
        output.emit_json(
            {
                "task_id": board.task_id,
                "metric": board.metric,
                "direction": board.direction,
                "items": board.items,
                "total": board.total,
                "limit": board.limit,
                "offset": board.offset,
            }
        )
        return
    defaults = {}
    if board.items:
        defaults = {
            a.name: {hp["name"]: hp.get("default") for hp in a.hyperparameters}
            for a in c.algorithms.list()
        }
    columns: list[output.Column] = [
        ("#", "rank"),
        ("run", "run_id"),
        (board.metric, lambda e: mean_std(e["score"], e["score_std"])),
        ("algorithm", "algorithm"),
        ("key params", lambda e: key_params(e["params"], defaults.get(e["algorithm"]))),
        ("contributor", "contributor"),
        ("organisations", "organisations"),
        ("time", lambda e: duration(e["wall_time_s"])),
    ]
    if any(e.kind != "platform" for e in board.items):
        columns.insert(4, ("kind", "kind"))
    better = "higher" if board.direction == "maximize" else "lower"
    output.table(
        board.items,
        columns,
        title=f"Task {board.task_id} by {board.metric} ({better} is better)",
        empty="No succeeded runs yet.",
    )
    if board.total > len(board.items) + offset:
        output.note(f"showing {len(board.items)} of {board.total}; use --offset / --limit for more")
