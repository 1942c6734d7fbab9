"""``execute_run``: one algorithm with fixed hyperparameters and seed, over a task's splits.

For each outer fold f:

1. for each inner fold i, a fresh pipeline (preprocessor + model, the
   preprocessor fitted on these rows only) fits on inner fold i's training
   part and predicts its validation part: the out-of-fold (``oof``)
   predictions, scored per inner fold (``validation`` in the result);
2. a fresh pipeline refits on the whole training part of fold f (iterative
   algorithms for the mean length the inner fits kept, see :mod:`.fitting`)
   and predicts fold f's test part: the ``test`` predictions and the fold's
   metrics, which the leaderboard ranks (mean ± std over outer folds).

Then the final model: with one outer fold (holdout splits) it is fold 0's
refit, which already trained on the whole training part; with several
(k-fold, group k-fold, predefined folds) a refit on every row, iterative
algorithms for the mean length of the folds' refits.

Warm start (``parent_dir``, a parent run's ``out_dir``): every fit starts from
the parent's fit in the same place (inner fit, fold refit, final model): its
fitted preprocessor is reused and its model continued (LightGBM
``init_model``, torch fine-tuning). The result records the parent and the
change of every metric.

Everything is checked before the first fit. Fitting runs with one BLAS/OpenMP
thread (:data:`THREADS`; algorithms take their own thread hyperparameters).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from openmaas.errors import InvalidInput
from openmaas.ml.catalog import registry
from openmaas.ml.catalog.base import Algorithm
from openmaas.ml.catalog.persist import save_pipeline
from openmaas.ml.data.schema import ColumnSchema
from openmaas.ml.engine import environment as env
from openmaas.ml.engine.adapters import Rows, make_adapter
from openmaas.ml.engine.callbacks import FINAL, RunCallbacks
from openmaas.ml.engine.columns import check_columns
from openmaas.ml.engine.fitting import FINAL_FIT, INNER, REFIT, Fit, Fitter, mean_length, sub_seed
from openmaas.ml.engine.predictions import tag, write_predictions
from openmaas.ml.engine.results import (
    CURVES_FILE,
    FINAL_MODEL,
    FORMAT,
    LOG_FILE,
    PREDICTIONS_FILE,
    FoldResult,
    RunResult,
    fold_model,
    inner_model,
)
from openmaas.ml.engine.resume import pack, unpack
from openmaas.ml.engine.scoring import Scores, summarise
from openmaas.ml.engine.warmstart import ParentRun, open_parent
from openmaas.ml.metrics import get_metric
from openmaas.ml.splits import Splits
from openmaas.ml.tasks import TaskSpec

__all__ = ["THREADS", "execute_run"]

THREADS = 1
logger = logging.getLogger("openmaas.ml.engine")


def execute_run(
    frame: pd.DataFrame,
    columns: list[ColumnSchema],
    spec: TaskSpec,
    splits: Splits,
    algorithm: str,
    params: dict[str, Any],
    seed: int,
    out_dir: Path,
    *,
    callbacks: RunCallbacks | None = None,
    parent_dir: Path | None = None,
    dataset_version: str | None = None,
) -> RunResult:
    """Fit ``algorithm`` with ``params`` and ``seed`` on ``splits`` of ``frame``; see the module.

    Writes everything to ``out_dir`` (layout in :mod:`.results`) and returns
    the result; ``dataset_version`` (the caller's id or digest of the dataset
    version) is recorded in its environment beside the engine's own digest of
    ``frame``. Raises :class:`InvalidInput` before fitting anything if the
    algorithm, its parameters, the columns, the splits or the parent do not fit
    the task.
    """
    start = time.perf_counter()
    cls, checked = check_algorithm(algorithm, spec.type, params, seed)
    frame = frame.reset_index(drop=True)
    _check_splits(spec, splits, len(frame))
    check_columns(spec, frame, columns)
    run = _Run(frame, columns, spec, splits, cls, checked, seed, Path(out_dir),
               callbacks or RunCallbacks(), parent_dir, dataset_version)  # fmt: skip
    with _single_threaded():
        return run.execute(start)


def check_algorithm(
    name: str, task_type: str, params: dict[str, Any], seed: int
) -> tuple[type[Algorithm], dict[str, Any]]:
    """The algorithm class and its checked hyperparameters (defaults merged)."""
    cls = registry.get_algorithm(name)
    registry.check_supports(cls, task_type)
    checked = registry.check_params(cls, params)
    declared = {h.name: h for h in cls.hyperparameters()}
    if "random_state" in params and checked["random_state"] != declared["random_state"].default:
        raise InvalidInput(
            f"random_state is derived from the run's seed for every fit; pass seed instead "
            f"(got random_state={params['random_state']!r})",
            details={"parameter": "random_state"},
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise InvalidInput(f"seed must be a non-negative integer; got {seed!r}")
    return cls, checked


def _check_splits(spec: TaskSpec, splits: Splits, n_rows: int) -> None:
    if splits.n_rows != n_rows:
        raise InvalidInput(f"the splits cover {splits.n_rows} rows but the frame has {n_rows}")
    if splits.time_ordered != spec.time_ordered:
        raise InvalidInput("the splits were not made for this task (time ordering differs)")


@contextlib.contextmanager
def _single_threaded() -> Iterator[None]:
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=THREADS):
        if torch is not None:
            torch.set_num_threads(THREADS)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(before)


@dataclass
class _Outcome:
    """One finished outer fold, computed or restored from its payload."""

    result: FoldResult
    predictions: pd.DataFrame
    curves: dict[str, dict[str, list[float]]]
    log: list[str]


class _Run:
    def __init__(
        self,
        frame: pd.DataFrame,
        columns: Sequence[ColumnSchema],
        spec: TaskSpec,
        splits: Splits,
        cls: type[Algorithm],
        params: dict[str, Any],
        seed: int,
        out_dir: Path,
        callbacks: RunCallbacks,
        parent_dir: Path | None,
        dataset_version: str | None,
    ) -> None:
        self.spec, self.splits, self.cls, self.params = spec, splits, cls, params
        self.seed, self.out_dir, self.callbacks = seed, out_dir, callbacks
        self.lines: list[str] = []
        self.where = ""
        self.dataset_version = dataset_version
        self.adapter = make_adapter(frame, columns, spec, self._metric_log)
        self.adapter.check(splits)
        self.parent: ParentRun | None = (
            open_parent(Path(parent_dir), cls, spec, splits) if parent_dir else None
        )
        self.fitter = Fitter(cls, params, self.adapter, callbacks, self.log)
        self.digests = env.data_digest(frame), env.splits_digest(splits)
        self.fingerprint = self._fingerprint()
        # a payload zips the fold's models (megabytes of boosting text): only for
        # callbacks that keep it
        self.keeps_folds = type(callbacks).on_fold_done is not RunCallbacks.on_fold_done

    def _fingerprint(self) -> str:
        what = {
            "format": FORMAT, "task": self.spec.model_dump(mode="json"),
            "algorithm": self.cls.name, "params": self.params, "seed": self.seed,
            "digests": self.digests, "parent": self.parent and self.parent.result.fingerprint,
        }  # fmt: skip
        return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()

    def log(self, line: str) -> None:
        self.lines.append(line)
        logger.info(line)

    def _metric_log(self, line: str) -> None:
        self.log(f"{self.where}: {line}" if self.where else line)

    def _parent_pipe(self, where: str) -> Pipeline | None:
        return None if self.parent is None else self.parent.pipeline(where)

    # -- folds ---------------------------------------------------------------------------

    def execute(self, start: float) -> RunResult:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        done = self.callbacks.completed_folds()
        folds = [
            self._restore(f, done[f]) if f in done else self._fold(f)
            for f in range(self.splits.n_outer)
        ]
        final, curve = self._final(folds)
        return self._finish(folds, final, curve, start, sorted(done))

    def _evaluate(
        self, key: str, fit: Fit, rows: Rows, seen: Rows, output: Any = None
    ) -> tuple[pd.DataFrame, Scores]:
        self.where = key
        try:
            return self.adapter.evaluate(fit.pipe, rows, seen, output=output)
        finally:
            self.where = ""

    def _inner(self, f: int, i: int) -> tuple[Fit, pd.DataFrame, Scores]:
        train, valid = self.splits.inner_train_valid(f, i)
        key = f"fold_{f}/inner_{i}"
        fit = self.fitter.fit(
            key, train, valid=valid, seed=sub_seed(self.seed, INNER, f, i),
            event={"fold": f, "inner": i}, parent=self._parent_pipe(inner_model(f, i)),
        )  # fmt: skip
        if self.cls.warm_start_capable:
            save_pipeline(fit.pipe, self.out_dir / inner_model(f, i))
        predictions, scores = self._evaluate(key, fit, valid, train, fit.valid_output)
        return fit, tag(predictions, f, "oof", i), scores

    def _fold(self, f: int) -> _Outcome:
        n = self.splits.n_outer
        self.callbacks.on_progress({"event": "fold_start", "fold": f, "folds": n})
        mark, start = len(self.lines), time.perf_counter()
        frames, inner_scores, curves, kept = [], [], {}, []
        for i in range(self.splits.n_inner):
            fit, predictions, scores = self._inner(f, i)
            frames.append(predictions)
            inner_scores.append(scores)
            curves[f"fold_{f}/inner_{i}"] = fit.curve
            kept.append(fit.kept)
        train, test = self.splits.train_test(f)
        length = mean_length(kept)
        fit = self.fitter.fit(
            f"fold_{f}/refit", train, seed=sub_seed(self.seed, REFIT, f), length=length,
            event={"fold": f, "inner": None}, parent=self._parent_pipe(fold_model(f)),
        )  # fmt: skip
        save_pipeline(fit.pipe, self.out_dir / fold_model(f))
        predictions, scores = self._evaluate(f"fold_{f}", fit, test, train)
        frames.append(tag(predictions, f, "test", None))
        curves = {f"fold_{f}": fit.curve, **curves}
        seconds = time.perf_counter() - start
        result = FoldResult(f, scores, inner_scores, len(train), len(test), length, seconds)
        outcome = _Outcome(result, pd.concat(frames, ignore_index=True), curves, self.lines[mark:])
        self._report(f, outcome)
        return outcome

    def _report(self, f: int, outcome: _Outcome) -> None:
        # A payload spares a new attempt the fold's training; with one outer fold only
        # writing the results follows it, so it would cost more than it can save.
        if self.keeps_folds and self.splits.n_outer > 1:
            record = {"fingerprint": self.fingerprint, "result": outcome.result.to_dict(),
                      "curves": outcome.curves, "log": outcome.log}  # fmt: skip
            models = [fold_model(f)]
            if self.cls.warm_start_capable:
                models.append(f"models/inner/fold_{f}")
            self.callbacks.on_fold_done(f, pack(self.out_dir, record, outcome.predictions, models))
        self._fold_done(outcome.result, restored=False)

    def _fold_done(self, result: FoldResult, *, restored: bool) -> None:
        event = {"event": "fold_done", "fold": result.fold, "folds": self.splits.n_outer}
        self.callbacks.on_progress({**event, "metrics": result.metrics, "restored": restored})

    def _restore(self, f: int, payload: bytes) -> _Outcome:
        what = f"completed fold {f}"
        record, predictions = unpack(payload, self.out_dir, fingerprint=self.fingerprint, what=what)
        self.lines += [str(line) for line in record["log"]]
        assert predictions is not None
        result = FoldResult.from_dict(record["result"])
        self.log(f"fold_{f}: restored from a completed fold")
        self._fold_done(result, restored=True)
        return _Outcome(result, predictions, record["curves"], record["log"])

    # -- final model and outputs ---------------------------------------------------------

    def _final(self, folds: list[_Outcome]) -> tuple[dict[str, Any], dict[str, list[float]]]:
        """The final model: fold 0's with one outer fold, else refitted on every row (no
        payload: only writing the results follows it)."""
        if len(folds) == 1:
            shutil.rmtree(self.out_dir / FINAL_MODEL, ignore_errors=True)
            shutil.copytree(self.out_dir / fold_model(0), self.out_dir / FINAL_MODEL)
            first = folds[0].result
            final = {"source": "fold_0", "rows": first.n_train, "length": first.length}
            return final, folds[0].curves["fold_0"]
        rows = np.arange(self.splits.n_rows)
        length = mean_length([o.result.length for o in folds])
        fit = self.fitter.fit(
            "final", rows, seed=sub_seed(self.seed, FINAL_FIT), length=length,
            event={"fold": FINAL, "inner": None}, parent=self._parent_pipe(FINAL_MODEL),
        )  # fmt: skip
        save_pipeline(fit.pipe, self.out_dir / FINAL_MODEL)
        return {"source": "refit", "rows": len(rows), "length": length}, fit.curve

    def _finish(
        self,
        folds: list[_Outcome],
        final: dict[str, Any],
        final_curve: dict[str, list[float]],
        start: float,
        resumed: list[int],
    ) -> RunResult:
        names = self.spec.metrics
        metrics = summarise([o.result.metrics for o in folds], names)
        validation = summarise([s for o in folds for s in o.result.inner_metrics], names)
        write_predictions([o.predictions for o in folds], self.out_dir / PREDICTIONS_FILE)
        curves = {k: v for o in folds for k, v in o.curves.items()}
        curves["final"] = final_curve
        (self.out_dir / CURVES_FILE).write_text(json.dumps(curves))
        (self.out_dir / LOG_FILE).write_text("".join(f"{line}\n" for line in self.lines))
        restored = sum(o.result.seconds for o in folds if o.result.fold in resumed)
        primary = get_metric(names[0])
        result = RunResult(
            algorithm=self.cls.name, task_type=self.spec.type, seed=self.seed,
            params={k: v for k, v in self.params.items() if k != "random_state"},
            primary_metric=primary.name, direction=primary.direction,
            score=metrics[primary.name]["mean"], score_std=metrics[primary.name]["std"],
            metrics=metrics, validation=validation, folds=[o.result for o in folds],
            final=final, features=[c.name for c in self.adapter.features],
            environment=env.environment(self.seed, THREADS, *self.digests, self.dataset_version),
            wall_time_s=time.perf_counter() - start + restored, peak_rss_mb=env.peak_rss_mb(),
            fingerprint=self.fingerprint, resumed_folds=resumed,
            parent=None if self.parent is None else self.parent.summary(metrics),
        )  # fmt: skip
        result.write(self.out_dir)
        self.callbacks.on_progress({"event": "run_done", "score": result.score,
                                    "seconds": result.wall_time_s})  # fmt: skip
        return result
