"""Sequence tasks: windows of ``context_length`` steps predicting the next ``horizon``.

Rows are ordered by (series, time) and cut into every window of
``context_length + horizon`` consecutive rows of one series
(:func:`~openmaas.ml.catalog.torch.windows.sliding_windows`). The windowed
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
from openmaas.ml.catalog.torch.windows import sliding_windows
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
        self.values = frame[[c.name for c in self.features]]
        series, _ = pd.factorize(frame[cfg.series_column])
        when = frame[cfg.time_column].rank(method="first").to_numpy()
        order = np.lexsort((when, series))  # sorted position -> dataset row
        context, horizon = cfg.context_length, cfg.horizon
        values = _floats(self.values).iloc[order].to_numpy()
        self.X, _, start = sliding_windows(values, context, horizon, series=series[order])
        if self.X.ndim == 2:
            self.X = self.X[:, :, None]
        self.targets = order[start[:, None] + np.arange(horizon)]  # (windows, horizon) rows
        self.context = order[start[:, None] - context + np.arange(context)]
        target = frame[spec.target_columns[0]].to_numpy()
        self.y = target[self.targets]
        self.classes = None if target.dtype.kind in "fiu" else np.unique(target)

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
                    f"{self.X.shape[1]} + {self.targets.shape[1]} rows of one series; at least "
                    "2 are needed (shorten context_length or horizon)",
                    details={"outer_fold": f, "inner_fold": i, "windows": n},
                )

    def _windows(self, rows: Rows, seen: Rows | None) -> npt.NDArray[np.bool_]:
        inside = np.zeros(len(self.frame), dtype=bool)
        inside[rows] = True
        allowed = inside.copy()
        if seen is not None:
            allowed[seen] = True
        targets_in: npt.NDArray[np.bool_] = inside[self.targets].all(axis=1)
        context_in: npt.NDArray[np.bool_] = allowed[self.context].all(axis=1)
        return targets_in & context_in

    def inputs(self, rows: Rows, context: Rows | None = None) -> tuple[Any, Any]:
        chosen = self._windows(rows, context)
        return self.X[chosen], self.y[chosen]

    def evaluate(self, pipe: Pipeline, rows: Rows, seen: Rows) -> tuple[pd.DataFrame, Scores]:
        chosen = self._windows(rows, seen)
        horizon = self.targets.shape[1]
        out = pd.DataFrame(
            {
                "row": self.targets[chosen].ravel(),
                "step": np.tile(np.arange(1, horizon + 1, dtype=np.int16), int(chosen.sum())),
            }
        )
        if not chosen.any():
            self.log("no complete window has its targets in this part")
            return out.assign(prediction=self.y[:0].ravel()), dict.fromkeys(self.spec.metrics)
        X = self.X[chosen]
        pred = np.asarray(pipe.predict(X)).reshape(len(X), horizon)
        out["prediction"] = pred.ravel()
        if self.classes is not None:
            model = pipe.steps[-1][1]
            proba = np.asarray(model.predict_proba(X)).reshape(len(X) * horizon, -1)
            aligned = align_proba(proba, model.classes_, self.classes)
            for j, c in enumerate(self.classes):
                out[f"proba_{c}"] = aligned[:, j]
        y_true = self.y[chosen].ravel()
        scores = score_predictions(
            self.spec.metrics, y_true, pred.ravel(), None, classes=self.classes, log=self.log
        )
        return out.sort_values(["row", "step"], kind="stable", ignore_index=True), scores


def _floats(values: pd.DataFrame) -> pd.DataFrame:
    """Numeric and boolean columns as float64 (missing values are refused by ``check``)."""
    return pd.DataFrame(
        {
            name: values[name].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
            for name in values.columns
        }
    )
