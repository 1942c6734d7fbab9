"""One fit: a fresh pipeline on some rows, seeded, maybe warm-started, its warnings logged.

**Seeds.** Every fit gets its own ``random_state``, derived from the run seed
and the fit's place (:func:`sub_seed`), so folds draw differently yet the same
run seed repeats every fit exactly. ``random_state`` is thus not a run
parameter: the engine refuses a non-default one and points to ``seed``.

**Training length.** Early stopping needs rows the model does not train on.
An inner fit trains on its inner training part and early-stops on its own
validation part (whose out-of-fold predictions are thus very slightly
optimistic, as with AutoGluon's bagged models; the outer test part is never
involved). A refit on a whole training part has no such rows, so it trains
for a fixed length: the mean of what the inner fits kept (boosting rounds,
epochs), read and set through the algorithm's :class:`Schedule`. Early
stopping on a part of the very rows trained on would hardly stop; training on
inner fold 0's training part only would waste a fifth of the rows.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from openmaas.ml.catalog.base import Algorithm
from openmaas.ml.engine.adapters import Rows, TaskAdapter
from openmaas.ml.engine.callbacks import RunCallbacks, fit_callbacks
from openmaas.ml.preprocessing import fit_pipeline, make_pipeline

__all__ = ["Fit", "Fitter", "Schedule", "mean_length", "schedule_for", "sub_seed"]

INNER, REFIT, FINAL_FIT = 0, 1, 2
"""The first path element of :func:`sub_seed` per kind of fit."""


def sub_seed(seed: int, *path: int) -> int:
    """The ``random_state`` of the fit at ``path`` (kind, fold, inner fold) of a run.

    Below 2**31, which every algorithm's ``random_state`` accepts.
    """
    state = np.random.SeedSequence([seed, *path]).generate_state(1)
    return int(state[0] >> 1)


@dataclass(frozen=True)
class Schedule:
    """How an iterative algorithm's training length is read from a fit and fixed for a refit."""

    length: str  # the hyperparameter setting the length
    no_stopping: dict[str, Any]  # hyperparameters turning early stopping off
    kept: Callable[[Any, Any], int]  # (fitted model, its parent or None) -> length kept


_BOOSTING = Schedule(
    "n_estimators",
    {"early_stopping_rounds": None},
    lambda model, parent: (
        int(model.best_iteration_)
        - (0 if parent is None else int(parent.booster_.current_iteration()))
    ),
)
_EPOCHS = Schedule("epochs", {"patience": 0}, lambda model, parent: int(model.best_epoch_))


def schedule_for(cls: type[Algorithm]) -> Schedule | None:
    """The schedule of an iterative algorithm, known by its hyperparameters (boosting:
    ``n_estimators`` + ``early_stopping_rounds``; torch: ``epochs`` + ``patience``).

    None for other algorithms: an unknown iterative one refits without validation
    data and decides its length itself.
    """
    names = {h.name for h in cls.hyperparameters()}
    if not cls.iterative:
        return None
    if {"n_estimators", "early_stopping_rounds"} <= names:
        return _BOOSTING
    if {"epochs", "patience"} <= names:
        return _EPOCHS
    return None


def mean_length(lengths: list[int | None]) -> int | None:
    """The rounded mean of the known lengths (at least 1), None if none is known."""
    known = [n for n in lengths if n is not None]
    return max(1, round(float(np.mean(known)))) if known else None


@dataclass
class Fit:
    pipe: Pipeline
    seconds: float
    curve: dict[str, list[float]]
    kept: int | None  # the training length kept (iterative algorithms with a schedule)
    #: the model's ``validation_output_`` if it predicted every row of ``valid``
    valid_output: Any = None


class Fitter:
    """Fits pipelines of one algorithm with fixed hyperparameters for one task."""

    def __init__(
        self,
        cls: type[Algorithm],
        params: dict[str, Any],
        adapter: TaskAdapter,
        callbacks: RunCallbacks,
        log: Callable[[str], None],
    ) -> None:
        self.cls = cls
        self.params = params
        self.adapter = adapter
        self.callbacks = callbacks
        self.log = log
        self.schedule = schedule_for(cls)
        self.seeded = any(h.name == "random_state" for h in cls.hyperparameters())

    def model(self, seed: int, length: int | None) -> Algorithm:
        params = dict(self.params)
        if self.seeded:
            params["random_state"] = seed
        if length is not None and self.schedule is not None:
            params.update({self.schedule.length: length, **self.schedule.no_stopping})
        return self.cls(task_type=self.adapter.spec.type, **params)

    def fit(
        self,
        key: str,
        rows: Rows,
        *,
        seed: int,
        event: dict[str, Any],
        valid: Rows | None = None,
        parent: Pipeline | None = None,
        length: int | None = None,
    ) -> Fit:
        """Fit on ``rows`` (early-stopping on ``valid`` if iterative), from ``parent`` if given."""
        pipe = make_pipeline(self.model(seed, length), self.adapter.features)
        X, y = self.adapter.inputs(rows)
        X_valid = y_valid = None
        if valid is not None and self.cls.iterative:
            X_valid, y_valid = self.adapter.inputs(valid, context=rows)
            if len(X_valid) == 0:
                X_valid = y_valid = None
        event = {**event, "key": key}
        self.callbacks.on_progress({**event, "event": "fit_start", "rows": len(rows)})
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit_pipeline(
                pipe, X, y, X_valid=X_valid, y_valid=y_valid, parent=parent,
                callbacks=fit_callbacks(self.callbacks, key, event),
            )  # fmt: skip
        seconds = time.perf_counter() - start
        self._log_warnings(key, caught)
        model = pipe.steps[-1][1]
        curve = getattr(model, "learning_curve_", None)
        kept = None
        if self.schedule is not None:
            kept = self.schedule.kept(model, None if parent is None else parent.steps[-1][1])
        self.callbacks.on_progress({**event, "event": "fit_done", "seconds": seconds})
        more = "" if kept is None else f"; kept length {kept}"
        self.log(f"{key}: fitted on {len(rows)} rows in {seconds:.2f} s{more}")
        output = getattr(model, "validation_output_", None)
        if valid is None or X_valid is None or len(X_valid) != len(valid):
            output = None  # some validation rows were left out of the fit
        return Fit(pipe, seconds, {} if curve is None else dict(curve.values), kept, output)

    def _log_warnings(self, key: str, caught: list[warnings.WarningMessage]) -> None:
        """One log line per distinct warning a fit raised (a run's warnings are its log's)."""
        counts = Counter((w.category.__name__, str(w.message)) for w in caught)
        for (category, message), count in counts.items():
            times = f" ({count} times)" if count > 1 else ""
            self.log(f"{key}: {category}: {message}{times}")
