"""Sequence tasks: windows of ``context_length`` steps predicting the next ``horizon``.

Rows are ordered by (series, time) and cut into every window of
``context_length + horizon`` consecutive rows of one series (as
:func:`~openmaas.ml.catalog.torch.windows.sliding_windows` does; windows are
built only for the part being fitted or predicted). The windowed
values are the target (if numeric) followed by the other numeric and boolean
columns (:mod:`.columns`); what is predicted is the target at the
``horizon`` rows after the context: numbers (forecasting) or labels
(classifying what comes next).

Which windows a part holds follows the split, so nothing later leaks in:

- training on rows ``T``: every row of the window is in ``T``;
- validating or testing on rows ``P`` after ``seen`` rows: every target row is
  in ``P`` and every context row in ``P`` or ``seen`` (a test window may read
  earlier test values, as a forecast made at that time would). A window whose
  targets straddle two parts belongs to neither.

Predictions are long: one line per (window, step), ``row`` the dataset row of
that step's target and ``step`` 1..horizon. A row is predicted once per step
at most (by the window ending ``step`` rows before it).
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.pipeline import Pipeline

from openmaas.errors import InvalidInput
from openmaas.ml.data.schema import ColumnSchema
from openmaas.ml.engine.adapters import (
    Log,
    Rows,
    TaskAdapter,
    align_proba,
    part_name,
    training_parts,
)
from openmaas.ml.engine.scoring import Scores, score_predictions
from openmaas.ml.splits import Splits
from openmaas.ml.tasks import TaskSpec

__all__ = ["Sequence"]


class Sequence(TaskAdapter):
    def __init__(
        self, frame: pd.DataFrame, columns: Seq[ColumnSchema], spec: TaskSpec, log: Log
    ) -> None:
        super().__init__(frame, columns, spec, log)
        cfg = spec.sequence
        assert cfg is not None
        self.context, self.horizon = cfg.context_length, cfg.horizon
        self.values = frame[[c.name for c in self.features]]
        series, _ = pd.factorize(frame[cfg.series_column])
        when = frame[cfg.time_column].rank(method="first").to_numpy()
        self.order = np.lexsort((when, series))  # sorted position -> dataset row
        self.start = _window_starts(series[self.order], self.context, self.horizon)
        self.sorted_values = _floats(self.values).to_numpy()[self.order]
        self.sorted_target = frame[spec.target_columns[0]].to_numpy()[self.order]
        kind = self.sorted_target.dtype.kind
        self.classes = None if kind in "fiu" else np.unique(self.sorted_target)

    def check(self, splits: Splits) -> None:
        for name in self.values.columns:
            count = int(self.values[name].isna().sum())
            if count:
                raise InvalidInput(
                    f"column {name!r} has {count} missing values; sequence models read every "
                    "step of a window, so fill or drop them",
                    details={"column": name, "missing": count},
                )
        for f, i, rows in training_parts(splits):
            n = int(self._windows(rows, None).sum())
            if n < 2:
                raise InvalidInput(
                    f"the training part of {part_name(f, i)} holds {n} complete windows of "
                    f"{self.context} + {self.horizon} rows of one series; at least 2 are "
                    "needed (shorten context_length or horizon)",
                    details={"outer_fold": f, "inner_fold": i, "windows": n},
                )

    def _windows(self, rows: Rows, seen: Rows | None) -> npt.NDArray[np.bool_]:
        """Which windows have every target in ``rows`` and their context in ``rows`` or
        ``seen`` (counted with prefix sums over sorted positions: no window is built)."""
        inside = np.zeros(len(self.frame), dtype=bool)
        inside[rows] = True
        allowed = inside.copy()
        if seen is not None:
            allowed[seen] = True
        inside_before = np.concatenate([[0], np.cumsum(inside[self.order])])
        allowed_before = np.concatenate([[0], np.cumsum(allowed[self.order])])
        s, h, c = self.start, self.horizon, self.context
        targets_in: npt.NDArray[np.bool_] = inside_before[s + h] - inside_before[s] == h
        context_in: npt.NDArray[np.bool_] = allowed_before[s] - allowed_before[s - c] == c
        return targets_in & context_in

    def _built(self, chosen: npt.NDArray[np.bool_]) -> tuple[Any, Any, Rows]:
        """The chosen windows: ``(k, context, features)`` inputs, ``(k, horizon)`` targets
        and the dataset rows of those targets."""
        s = self.start[chosen]
        X = self.sorted_values[s[:, None] - self.context + np.arange(self.context)]
        targets = s[:, None] + np.arange(self.horizon)
        return X, self.sorted_target[targets], self.order[targets]

    def inputs(self, rows: Rows, context: Rows | None = None) -> tuple[Any, Any]:
        X, y, _ = self._built(self._windows(rows, context))
        if context is not None and self.classes is not None:  # labels the fit never saw
            _, known, _ = self._built(self._windows(context, None))
            keep = np.isin(y, known).all(axis=1)
            X, y = X[keep], y[keep]
        return X, y

    def evaluate(
        self, pipe: Pipeline, rows: Rows, seen: Rows, output: Any = None
    ) -> tuple[pd.DataFrame, Scores]:
        X, y, target_rows = self._built(self._windows(rows, seen))
        steps = np.tile(np.arange(1, self.horizon + 1, dtype=np.int16), len(X))
        out = pd.DataFrame({"row": target_rows.ravel(), "step": steps})
        if len(X) == 0:
            self.log("no complete window has its targets in this part")
            return out.assign(prediction=y.ravel()), dict.fromkeys(self.spec.metrics)
        pred = np.asarray(pipe.predict(X)).reshape(len(X), self.horizon)
        out["prediction"] = pred.ravel()
        if self.classes is not None:
            model = pipe.steps[-1][1]
            proba = np.asarray(model.predict_proba(X)).reshape(len(X) * self.horizon, -1)
            aligned = align_proba(proba, model.classes_, self.classes)
            for j, c in enumerate(self.classes):
                out[f"proba_{c}"] = aligned[:, j]
        scores = score_predictions(
            self.spec.metrics, y.ravel(), pred.ravel(), None, classes=self.classes, log=self.log
        )
        return out.sort_values(["row", "step"], kind="stable", ignore_index=True), scores


def _window_starts(series: npt.NDArray[np.int64], context: int, horizon: int) -> Rows:
    """Sorted position of the first target of every window lying in one series."""
    first = np.arange(len(series) - context - horizon + 1)
    starts: Rows = first[series[first] == series[first + context + horizon - 1]] + context
    return starts


def _floats(values: pd.DataFrame) -> pd.DataFrame:
    """Numeric and boolean columns as float64 (missing values are refused by ``check``)."""
    return pd.DataFrame(
        {
            name: values[name].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
            for name in values.columns
        }
    )
