"""The ``run`` job: train a catalog algorithm on a task's stored splits.

Runs in a worker's child process. The engine (``openmaas.ml.engine``) does the
computation; this module feeds it the task's data and keeps what it reports:

- progress events become job progress and log lines;
- a finished fold's payload is stored as a blob and listed in the job's
  checkpoint, with the running fit's latest epoch state as the checkpoint blob,
  so a new attempt after a crash skips finished folds and continues the fit
  where it stopped. Fit checkpoints are taken at most every
  ``job_checkpoint_interval_s`` (each is a blob and a transaction; a tiny run
  takes none);
- the run's files (predictions, curves, models, log) become run artifacts and
  the metrics the run row, written in the same transaction as the job's fenced
  finish: a stale attempt writes nothing;
- with ``divergence_retries`` in the payload, a run whose training diverges
  starts over with the learning rate divided by ``DIVERGENCE_LR_FACTOR`` (as
  long as the algorithm accepts it), up to that many times. The learning rate
  in use and the retries so far live in the checkpoint's meta, so an attempt
  after a crash goes on with them; the run's params end with the learning rate
  that ran and its environment with ``divergence`` (what was asked, what ran,
  and why each lower rate was tried).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from sqlalchemy import select

from openmaas.domain.datasets import materialize
from openmaas.domain.runs import DIVERGENCE_LR_FACTOR
from openmaas.errors import TrainingDiverged
from openmaas.jobs.kinds import register_kind
from openmaas.jobs.runner import JobContext
from openmaas.ml.catalog import registry
from openmaas.ml.data import ColumnSchema
from openmaas.ml.engine import RunCallbacks, RunResult, execute_run, read_curves
from openmaas.ml.splits import Splits
from openmaas.ml.tasks import TaskSpec
from openmaas.store.metadata.tables import (
    DatasetVersion,
    Run,
    RunArtifact,
    RunMetric,
    Task,
)

EPOCH_REPORT_S = 0.2
"""Fewest seconds between two per-epoch progress reports (other events always go)."""

MEDIA = {
    ".parquet": "application/vnd.apache.parquet",
    ".json": "application/json",
    ".txt": "text/plain",
    ".log": "text/plain",
}


class JobCallbacks(RunCallbacks):
    """Engine hooks backed by the job's checkpoint (one blob + JSON meta)."""

    def __init__(self, job: JobContext) -> None:
        self.job = job
        resumed = job.resume()
        self.meta: dict[str, Any] = dict(resumed[1]) if resumed else {}
        self.state: bytes | None = resumed[0] if resumed else None
        self.meta.setdefault("folds", {})
        self.meta.setdefault("epochs_trained", 0)  # over every attempt, as of the checkpoint
        self.interval = job.settings.job_checkpoint_interval_s
        self.last_checkpoint = time.monotonic()
        self.last_epoch_report = -EPOCH_REPORT_S

    def on_progress(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "epoch":
            self.meta["epochs_trained"] += 1
            # The worker keeps only the latest progress (stored with each heartbeat): a
            # boosting round every few milliseconds need not each cross the pipe.
            now = time.monotonic()
            if now - self.last_epoch_report < EPOCH_REPORT_S:
                return
            self.last_epoch_report = now
        self.job.progress(event)
        if kind == "fold_done":
            metrics = event.get("metrics") or {}
            shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if v is not None)
            self.job.log(f"fold {event.get('fold')} of {event.get('folds')} done: {shown}")
        elif kind == "run_done":
            self.job.log(f"run done in {event.get('seconds', 0):.1f}s, score {event.get('score')}")

    def start_over(self, diverged: float, learning_rate: float, reason: str) -> None:
        """Drop the finished folds and fit state: the run that diverged with ``diverged``
        restarts with ``learning_rate``."""
        retries = [*self.meta.get("retries", []), {"learning_rate": diverged, "error": reason}]
        self.meta.update(folds={}, retries=retries, learning_rate=learning_rate)
        self.meta.pop("fit", None)
        self.state = None
        self.job.checkpoint(b"", self.meta)

    def learning_rate(self, default: float | None) -> float | None:
        """The learning rate in use after earlier divergences, else ``default``."""
        return self.meta.get("learning_rate", default)

    def on_fold_done(self, fold: int, payload: bytes) -> None:
        digest = self.job.platform.artifacts.put_stream(iter([payload])).digest
        self.meta["folds"][str(fold)] = digest
        self.meta.pop("fit", None)
        self.state = None
        self.job.checkpoint(b"", self.meta)

    def completed_folds(self) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        for fold, digest in self.meta.get("folds", {}).items():
            try:
                with self.job.platform.artifacts.open(digest) as f:
                    out[int(fold)] = f.read()
            except Exception:  # a lost payload only costs recomputing that fold
                continue
        return out

    def checkpoint_due(self, key: str, epoch: int) -> bool:
        return time.monotonic() - self.last_checkpoint >= self.interval

    def checkpoint(self, key: str, epoch: int, state: bytes) -> None:
        self.meta["fit"] = {"key": key, "epoch": epoch}
        self.state = state
        self.job.checkpoint(state, self.meta)
        self.last_checkpoint = time.monotonic()

    def resume_state(self, key: str) -> bytes | None:
        fit = self.meta.get("fit")
        if fit and fit.get("key") == key and self.state:
            self.job.log(f"resuming {key} from epoch {fit.get('epoch')}")
            return self.state
        return None


def _parent_dir(job: JobContext, parent_id: int, dest: Path) -> Path:
    """A parent run's files laid out as the engine wrote them (for warm starts)."""
    with job.platform.store.read() as s:
        rows = list(s.scalars(select(RunArtifact).where(RunArtifact.run_id == parent_id)))
    for row in rows:
        target = dest / row.name
        target.parent.mkdir(parents=True, exist_ok=True)
        materialize_to(job, row.digest, target)
    return dest


def materialize_to(job: JobContext, digest: str, target: Path) -> None:
    with target.open("wb") as f:
        for chunk in job.platform.artifacts.iter_chunks(digest):
            f.write(chunk)


def train(job: JobContext) -> dict[str, Any]:
    run_id = int(job.payload["run_id"])
    platform = job.platform
    with platform.store.read() as s:
        run = s.get(Run, run_id)
        if run is None:
            return {"skipped": "the run was deleted"}
        task = s.get(Task, run.task_id)
        assert task is not None
        version = s.get(DatasetVersion, task.dataset_version_id)
        assert version is not None
    job.log(f"run {run_id}: {run.algorithm} on task {task.name} v{task.version}, seed {run.seed}")
    spec = TaskSpec.model_validate(task.spec)
    columns = [ColumnSchema.from_dict(c) for c in version.columns]
    work = Path(tempfile.mkdtemp(prefix=f"run-{run_id}-", dir=platform.settings.tmp_dir))
    try:
        data = materialize(platform.as_(), version.digest, work / "data.parquet")
        frame = pq.read_table(data).to_pandas()
        with platform.artifacts.open(task.splits_digest) as f:
            splits = Splits.from_parquet(f)
        parent = _parent_dir(job, run.parent_id, work / "parent") if run.parent_id else None
        out = work / "out"
        callbacks = JobCallbacks(job)
        params = dict(run.params)
        retries = int(job.payload.get("divergence_retries", 0))
        requested = params.get("learning_rate")
        while True:
            if requested is not None:
                params["learning_rate"] = callbacks.learning_rate(requested)
            shutil.rmtree(out, ignore_errors=True)
            try:
                result = execute_run(
                    frame, columns, spec, splits, run.algorithm, params, run.seed, out,
                    callbacks=callbacks, parent_dir=parent, dataset_version=version.digest,
                )  # fmt: skip
                break
            except TrainingDiverged as e:
                lower = _lower_rate(run.algorithm, params, len(callbacks.meta.get("retries", [])),
                                    retries)  # fmt: skip
                if lower is None:
                    raise _after_retries(e, callbacks.meta.get("retries", [])) from e
                job.log(f"training diverged with learning_rate={params['learning_rate']:g}: "
                        f"{e.message}; retrying with learning_rate={lower:g}")  # fmt: skip
                callbacks.start_over(params["learning_rate"], lower, e.message)
        divergence = None
        if callbacks.meta.get("retries"):
            divergence = {"requested_learning_rate": requested,
                          "learning_rate": params["learning_rate"],
                          "retries": callbacks.meta["retries"]}  # fmt: skip
        files = _store_files(job, out)
        summary = {
            "run_id": run_id,
            "score": result.score,
            "epochs_trained": callbacks.meta["epochs_trained"],
            "resumed_folds": result.resumed_folds,
        }
        if divergence is not None:
            summary["learning_rate"] = params["learning_rate"]
        _record(job, run_id, result, files, read_curves(out), summary, divergence)
        return summary
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _lower_rate(algorithm: str, params: dict[str, Any], done: int, allowed: int) -> float | None:
    """The next learning rate to try after a divergence, or None (no retries left, or
    the lower rate is below what the algorithm accepts)."""
    rate = params.get("learning_rate")
    if done >= allowed or not isinstance(rate, int | float):
        return None
    lower = float(rate) / DIVERGENCE_LR_FACTOR
    declared = {h.name: h for h in registry.get_algorithm(algorithm).hyperparameters()}
    low = declared["learning_rate"].low
    return None if low is not None and lower < low else lower


def _after_retries(e: TrainingDiverged, retries: list[dict[str, Any]]) -> TrainingDiverged:
    """``e``, its message saying which lower learning rates diverged too."""
    if not retries:
        return e
    tried = ", ".join(f"{r['learning_rate']:g}" for r in retries)
    return TrainingDiverged(
        f"{e.message} (after {len(retries)} retries with lower learning rates; "
        f"{tried} diverged before)",
        details={**e.details, "retries": retries},
    )


def _store_files(job: JobContext, out: Path) -> list[tuple[str, str, int, str]]:
    stored = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        name = path.relative_to(out).as_posix()
        info = job.platform.artifacts.put_file(path)
        media = MEDIA.get(path.suffix, "application/octet-stream")
        stored.append((name, info.digest, info.size, media))
    return stored


def _record(
    job: JobContext,
    run_id: int,
    result: RunResult,
    files: list[tuple[str, str, int, str]],
    curves: dict[str, dict[str, list[float]]],
    summary: dict[str, Any],
    divergence: dict[str, Any] | None = None,
) -> None:
    with job.finish(summary) as s:
        run = s.get(Run, run_id)
        if run is None:  # deleted while training: nothing to record
            return
        run.state = "succeeded"
        environment = result.environment
        if divergence is not None:  # the learning rate that ran, and why
            run.params = {**run.params, "learning_rate": divergence["learning_rate"]}
            environment = {**environment, "divergence": divergence}
        run.score = result.score
        run.score_std = result.score_std
        run.metrics = json.loads(json.dumps(result.metrics, default=str))
        run.environment = environment
        run.wall_time_s = result.wall_time_s
        run.peak_rss_mb = result.peak_rss_mb
        run.finished_at = datetime.now(UTC)
        run.error = None
        for name, digest, size, media in files:
            s.add(RunArtifact(run_id=run_id, name=name, digest=digest, size_bytes=size,
                              media_type=media))  # fmt: skip
        for curve, series in curves.items():
            for metric, values in series.items():
                s.add_all(
                    RunMetric(run_id=run_id, key=f"{curve}/{metric}", step=i + 1, value=v)
                    for i, v in enumerate(values)
                    if v is not None and v == v
                )


register_kind("run", train)
