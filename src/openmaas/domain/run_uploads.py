"""Results made outside the platform and scored by it: external and logged runs.

**External runs.** :func:`submit_predictions` takes a predictions file (the
layout of :mod:`openmaas.ml.engine.external`), reads, checks and scores it
against the task's stored splits *before* storing anything, then stores the
file as a blob and records a ``succeeded`` run of kind ``external`` with its
``predictions.parquet`` artifact in one transaction. A bad upload is refused
with a 4xx naming the problem and leaves no run and no blob.

**Logged runs** (tracking, as in MLflow): :func:`start_logged` makes a
``running`` run of kind ``logged``; while it runs, its creator (or a
maintainer of the project) logs parameters, metrics and curves (one value per
key and step), files, and predictions, which the server scores exactly as an
external upload and which set the run's score. :func:`end` marks it
``succeeded`` or ``failed`` (a conditional update: a run ends once); an ended
run accepts no more logs (409). The leaderboard ranks succeeded runs with a
score, so a logged run is ranked only if it logged predictions: metrics a
script computed itself are kept and shown, never ranked.
"""

from __future__ import annotations

import contextlib
import json
import math
import mimetypes
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from openmaas.domain import audit, runs
from openmaas.domain.context import Ctx
from openmaas.domain.policy import Action
from openmaas.domain.projects import authorize
from openmaas.errors import Conflict, InvalidFile, InvalidInput, NotFound
from openmaas.ml.data.growing import Src, as_path
from openmaas.ml.engine.external import ScoredRun, check_supported, score_uploaded
from openmaas.ml.engine.predictions import write_predictions
from openmaas.ml.splits import Splits
from openmaas.ml.tasks import TaskSpec
from openmaas.store.artifacts.base import BlobInfo
from openmaas.store.metadata.tables import DatasetVersion, Run, RunArtifact, RunMetric, Task

__all__ = [
    "FORMATS",
    "PREDICTIONS_FILE",
    "check_artifact_name",
    "end",
    "log_artifact",
    "log_metrics",
    "log_params",
    "log_predictions",
    "start_logged",
    "submit_predictions",
]

FORMATS = ("parquet", "csv")
PREDICTIONS_FILE = "predictions.parquet"
PARQUET = "application/vnd.apache.parquet"
MAX_PARAMS_BYTES = 64 * 1024
MAX_METRICS = 1000  # per call
MAX_STEP = 2**31 - 1
END_STATES = ("succeeded", "failed")


# -- checks --------------------------------------------------------------------------


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InvalidInput(
            f"unsupported predictions format {fmt!r}; use parquet or csv",
            details={"field": "format"},
        )
    return fmt


def _check_text(
    value: str, field: str, limit: int, *, empty: bool = True, lines: bool = False
) -> str:
    """At most ``limit`` printable characters (and line breaks and tabs if ``lines``)."""
    if not isinstance(value, str) or len(value) > limit or (not empty and not value):
        raise InvalidInput(
            f"{field} must be {0 if empty else 1} to {limit} characters", details={"field": field}
        )
    if not all(c.isprintable() or (lines and c in "\n\r\t") for c in value):
        raise InvalidInput(f"{field} must be printable text", details={"field": field})
    return value


def _check_params(params: Any, before: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """JSON-safe parameters (keys up to 250 characters, 64 KiB in all)."""
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise InvalidInput("params must be a JSON object", details={"field": "params"})
    long = [k for k in params if not 0 < len(k) <= 250]
    if long:
        raise InvalidInput(
            f"parameter names must be 1 to 250 characters: {long[0][:40]!r}",
            details={"field": "params"},
        )
    merged = {**(before or {}), **params}
    try:
        size = len(json.dumps(merged, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise InvalidInput(
            f"params must be JSON values (no NaN or infinity): {e}", details={"field": "params"}
        ) from e
    if size > MAX_PARAMS_BYTES:
        raise InvalidInput(
            f"the parameters take {size} bytes as JSON; the limit is {MAX_PARAMS_BYTES}",
            details={"field": "params"},
        )
    return dict(params)


def check_artifact_name(name: str) -> str:
    """A relative, ``/``-separated path without ``.``, ``..`` or empty segments."""
    problem = None
    if not isinstance(name, str) or not 0 < len(name) <= 256:
        problem = "use 1 to 256 characters"
    elif name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":"):
        problem = "use a relative path with '/' separators"
    elif not name.isprintable():
        problem = "use printable characters"
    elif any(part in ("", ".", "..") for part in name.split("/")):
        problem = "no empty, '.' or '..' path segments"
    elif name == PREDICTIONS_FILE:
        problem = f"{PREDICTIONS_FILE} is where the server keeps scored predictions; log them "
        problem += "as predictions (POST /runs/{run_id}/predictions) instead"
    if problem:
        raise InvalidInput(f"invalid artifact name {str(name)[:80]!r}: {problem}",
                           details={"field": "name"})  # fmt: skip
    return name


def _check_metrics(items: Sequence[Mapping[str, Any]]) -> list[tuple[str, float, int]]:
    if len(items) > MAX_METRICS:
        raise InvalidInput(
            f"log at most {MAX_METRICS} values per call, got {len(items)}",
            details={"field": "metrics"},
        )
    out = []
    for i, item in enumerate(items):
        key, value, step = item.get("key"), item.get("value"), item.get("step", 0)
        if not isinstance(key, str) or not 0 < len(key) <= 128 or not key.isprintable():
            raise InvalidInput(
                f"metric {i}: the key must be 1 to 128 printable characters",
                details={"field": f"metrics[{i}].key"},
            )
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise InvalidInput(
                f"metric {key!r}: the value must be a finite number, got {value!r}",
                details={"field": f"metrics[{i}].value"},
            )
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
            raise InvalidInput(
                f"metric {key!r}: the step must be an integer in 0..{MAX_STEP}, got {step!r}",
                details={"field": f"metrics[{i}].step"},
            )
        out.append((key, float(value), step))
    return out


# -- loading -------------------------------------------------------------------------


def _task(ctx: Ctx, s: Session, task_id: int) -> Task:
    task = s.get(Task, task_id)
    if task is None:
        raise NotFound("task not found")
    authorize(ctx, s, task.project_id, Action.create, kind="task")
    return task


def _running(ctx: Ctx, s: Session, run_id: int, *, lock: bool = False) -> Run:
    """A logged run the caller may log to (creator or maintainer) that is still running."""
    q = select(Run).where(Run.id == run_id)
    run = s.scalar(q.with_for_update() if lock else q)
    if run is None:
        raise NotFound("run not found")
    authorize(ctx, s, run.project_id, Action.edit, kind="run", owner_id=run.created_by)
    if run.kind != "logged":
        raise Conflict(
            f"run {run_id} is a {run.kind} run; only logged runs accept logs",
            details={"kind": run.kind},
        )
    if run.state != "running":
        raise Conflict(
            f"run {run_id} has ended ({run.state}); only running runs accept logs",
            details={"state": run.state},
        )
    return run


# -- predictions ---------------------------------------------------------------------


@contextlib.contextmanager
def _scratch(ctx: Ctx) -> Iterator[Path]:
    path = ctx.settings.tmp_dir / f"predictions-{uuid.uuid4().hex}"
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _read(path: Path, fmt: str) -> pd.DataFrame:
    try:
        if fmt == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as e:  # any parser error is a bad file, never a server error
        raise InvalidFile(
            f"cannot read the predictions as {fmt}: {str(e)[:300]}", details={"format": fmt}
        ) from e


def _score(ctx: Ctx, task: Task, upload: Src, fmt: str) -> ScoredRun:
    """Read and score an upload; stores nothing."""
    spec = TaskSpec.model_validate(task.spec)
    check_supported(spec.type)
    with ctx.store.read() as s:
        version = s.get(DatasetVersion, task.dataset_version_id)
        assert version is not None
    with ctx.artifacts.open(version.digest) as f:
        targets = pq.read_table(f, columns=spec.target_columns).to_pandas()
    with ctx.artifacts.open(task.splits_digest) as f:
        splits = Splits.from_parquet(f)
    return score_uploaded(_read(as_path(upload), fmt), spec, splits, targets)


def _store(ctx: Ctx, scored: ScoredRun) -> BlobInfo:
    with _scratch(ctx) as tmp:
        path = tmp / PREDICTIONS_FILE
        write_predictions([scored.predictions], path)
        return ctx.artifacts.put_file(path)


def _set_artifact(s: Session, run_id: int, name: str, blob: BlobInfo, media: str) -> RunArtifact:
    row = s.scalar(
        select(RunArtifact).where(RunArtifact.run_id == run_id, RunArtifact.name == name)
    )
    if row is None:
        row = RunArtifact(run_id=run_id, name=name)
        s.add(row)
    row.digest, row.size_bytes, row.media_type = blob.digest, blob.size, media
    row.created_at = datetime.now(UTC)
    return row


def _record_scores(run: Run, scored: ScoredRun) -> None:
    run.score, run.score_std = scored.score, scored.score_std
    run.metrics = json.loads(json.dumps(scored.metrics, default=str))
    run.environment = {**run.environment, "scoring_log": scored.log}


def submit_predictions(
    ctx: Ctx,
    task_id: int,
    file: Src,
    fmt: str,
    *,
    algorithm: str = "external",
    params: Mapping[str, Any] | None = None,
    name: str = "",
    description: str = "",
) -> runs.RunView:
    """An external run: predictions made elsewhere, scored by the server (see the module)."""
    _check_format(fmt)
    _check_text(algorithm, "algorithm", 64, empty=False)
    _check_text(name, "name", 128)
    _check_text(description, "description", 10_000, lines=True)
    checked = _check_params(params or {})
    with ctx.store.read() as s:
        task = _task(ctx, s, task_id)
    scored = _score(ctx, task, file, fmt)
    blob = _store(ctx, scored)
    now = datetime.now(UTC)
    with ctx.store.write() as s:
        task = _task(ctx, s, task_id)
        run = Run(
            project_id=task.project_id, task_id=task.id, kind="external", name=name,
            algorithm=algorithm, params=checked, state="succeeded",
            metric=task.spec["metrics"][0], created_by=ctx.principal.user_id,
            environment={"source": "upload", "format": fmt, "description": description},
            started_at=now, finished_at=now,
        )  # fmt: skip
        _record_scores(run, scored)
        s.add(run)
        s.flush()
        _set_artifact(s, run.id, PREDICTIONS_FILE, blob, PARQUET)
        audit.record(
            s, ctx.principal, "run.submit", "run", run.id, project_id=task.project_id,
            details={"task_id": task.id, "algorithm": algorithm, "score": run.score},
        )  # fmt: skip
        run_id = run.id
    return runs.get(ctx, run_id)


# -- logged runs ---------------------------------------------------------------------


def start_logged(
    ctx: Ctx,
    task_id: int,
    *,
    name: str = "",
    algorithm: str = "custom",
    params: Mapping[str, Any] | None = None,
) -> runs.RunView:
    """A ``running`` logged run on a task, for its creator to log to."""
    _check_text(algorithm, "algorithm", 64, empty=False)
    _check_text(name, "name", 128)
    checked = _check_params(params or {})
    with ctx.store.write() as s:
        task = _task(ctx, s, task_id)
        run = Run(
            project_id=task.project_id, task_id=task.id, kind="logged", name=name,
            algorithm=algorithm, params=checked, state="running",
            metric=task.spec["metrics"][0], created_by=ctx.principal.user_id,
            environment={"source": "logged"}, started_at=datetime.now(UTC),
        )  # fmt: skip
        s.add(run)
        s.flush()
        audit.record(s, ctx.principal, "run.start", "run", run.id, project_id=task.project_id,
                     details={"task_id": task.id, "kind": "logged"})  # fmt: skip
        run_id = run.id
    return runs.get(ctx, run_id)


def log_params(ctx: Ctx, run_id: int, params: Mapping[str, Any]) -> runs.RunView:
    """Add parameters; a parameter once logged keeps its value (409 on a change)."""
    with ctx.store.write() as s:
        run = _running(ctx, s, run_id, lock=True)
        checked = _check_params(params, run.params)
        changed = [k for k, v in checked.items() if k in run.params and run.params[k] != v]
        if changed:
            raise Conflict(
                f"parameter {changed[0]!r} was logged as {run.params[changed[0]]!r}; "
                "a logged parameter cannot change",
                details={"param": changed[0]},
            )
        run.params = {**run.params, **checked}
    return runs.get(ctx, run_id)


def log_metrics(ctx: Ctx, run_id: int, items: Sequence[Mapping[str, Any]]) -> int:
    """Record ``{"key", "value", "step"}`` values (curves: one per step); returns how many."""
    values = _check_metrics(items)
    with ctx.store.write() as s:
        run = _running(ctx, s, run_id, lock=True)
        s.add_all(RunMetric(run_id=run.id, key=k, value=v, step=step) for k, v, step in values)
    return len(values)


def log_artifact(ctx: Ctx, run_id: int, name: str, file: Src) -> RunArtifact:
    """Store a file under ``name`` (replacing a file of that name logged before)."""
    check_artifact_name(name)
    with ctx.store.read() as s:
        _running(ctx, s, run_id)
    blob = ctx.artifacts.put_file(as_path(file))
    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
    with ctx.store.write() as s:
        run = _running(ctx, s, run_id, lock=True)
        row = _set_artifact(s, run.id, name, blob, media[:100])
        audit.record(
            s, ctx.principal, "run.log_artifact", "run", run.id, project_id=run.project_id,
            details={"name": name, "size": blob.size},
        )  # fmt: skip
    return row


def log_predictions(ctx: Ctx, run_id: int, file: Src, fmt: str) -> runs.RunView:
    """Predictions of the run, scored by the server: they set (or replace) its score."""
    _check_format(fmt)
    with ctx.store.read() as s:
        run = _running(ctx, s, run_id)
        task = s.get(Task, run.task_id)
        assert task is not None
    scored = _score(ctx, task, file, fmt)
    blob = _store(ctx, scored)
    with ctx.store.write() as s:
        run = _running(ctx, s, run_id, lock=True)
        _record_scores(run, scored)
        _set_artifact(s, run.id, PREDICTIONS_FILE, blob, PARQUET)
        audit.record(s, ctx.principal, "run.log_predictions", "run", run.id,
                     project_id=run.project_id, details={"score": run.score})  # fmt: skip
    return runs.get(ctx, run_id)


def end(ctx: Ctx, run_id: int, state: str = "succeeded", error: str | None = None) -> runs.RunView:
    """End a logged run as ``succeeded`` or ``failed``; only once (409 after)."""
    if state not in END_STATES:
        raise InvalidInput(
            f"a logged run ends as succeeded or failed, not {state!r}", details={"field": "state"}
        )
    if error is not None:
        _check_text(error, "error", 10_000, lines=True)
    with ctx.store.write() as s:
        run = _running(ctx, s, run_id)
        ended = s.execute(
            update(Run)
            .where(Run.id == run_id, Run.state == "running")
            .values(state=state, error=error, finished_at=datetime.now(UTC))
            .execution_options(synchronize_session=False)
        )
        if ended.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict(f"run {run_id} has already ended")
        audit.record(s, ctx.principal, "run.end", "run", run_id, project_id=run.project_id,
                     details={"state": state, "score": run.score})  # fmt: skip
    return runs.get(ctx, run_id)
