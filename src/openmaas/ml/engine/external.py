"""Scoring predictions made elsewhere, exactly as the platform scores its own runs.

External and logged runs upload a predictions table in the layout of
:mod:`.predictions`; the server checks it against the task's stored splits
and scores it per outer fold with :func:`.scoring.score_predictions`, so the
same predictions get the same numbers as a platform run's.

Columns by task type (``<class>`` as in ``proba_yes``, one per class of the
target, in sorted order; ``<target>`` one per target column):

==============  ==============================================================
binary,         ``row``, ``prediction`` (a class label) and ``proba_<class>``
multiclass      (needed when a task metric needs scores: ``roc_auc``,
                ``log_loss`` ...; optional otherwise, then all of them)
regression      ``row``, ``prediction``
multitarget     ``row``, ``prediction_<target>``
anomaly         ``row``, ``score`` (higher = more anomalous)
==============  ==============================================================

Optional: ``outer_fold``, ``part`` (``test`` or ``oof``) and ``inner_fold``.
Without ``part`` every line is a test prediction. The test lines must hold
each row of every outer test part exactly once (k-fold: every row once; a
holdout: its test rows); ``oof`` lines (inner out-of-fold predictions, kept
for ensembles, not scored) need their ``outer_fold`` and must be rows
validated by an inner fold of it.

Everything is checked before anything is scored: the first problem raises
:class:`~openmaas.errors.InvalidInput` naming it (missing or unexpected
columns, wrong types, row ids out of range, not test rows, duplicated or
missing, missing values, unknown class labels, probabilities outside 0..1 or
not summing to 1). Recommendation and sequence tasks are not supported yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from openmaas.errors import InvalidInput
from openmaas.ml._folds import show
from openmaas.ml.engine.predictions import FOLD_COLUMNS
from openmaas.ml.engine.scoring import Scores, score_predictions, summarise
from openmaas.ml.metrics import get_metric
from openmaas.ml.splits import Splits
from openmaas.ml.tasks import TaskSpec

__all__ = ["SUPPORTED_TYPES", "ScoredRun", "check_supported", "score_uploaded"]

SUPPORTED_TYPES = ("binary", "multiclass", "regression", "multitarget", "anomaly")
SHOWN = 5  # row ids and values quoted in a message
PARTS = ("oof", "test")
SUM_TOLERANCE = 1e-4  # probabilities summing to 1 within this are renormalised


@dataclass(frozen=True)
class ScoredRun:
    """The server's scores of an upload, and the lines to store (the platform's layout)."""

    score: float | None
    score_std: float | None
    metrics: dict[str, dict[str, Any]]
    folds: list[Scores]
    predictions: pd.DataFrame
    log: list[str]


def score_uploaded(
    predictions: pd.DataFrame, spec: TaskSpec, splits: Splits, targets: pd.DataFrame
) -> ScoredRun:
    """Check ``predictions`` against ``splits`` and score them on ``targets``.

    ``targets`` holds the task's target columns for every dataset row, in
    dataset order. Raises :class:`InvalidInput` naming the first problem.
    """
    check_supported(spec.type)
    if len(targets) != splits.n_rows:
        raise InvalidInput(f"the targets have {len(targets)} rows, the splits {splits.n_rows}")
    layout = _Layout(spec, targets.reset_index(drop=True))
    lines = layout.check_columns(predictions.reset_index(drop=True))
    lines = _fold_columns(lines, splits)
    lines = layout.check_values(lines)
    test = lines[lines["part"] == "test"]
    order = np.argsort(test["row"].to_numpy(), kind="stable")
    test = test.iloc[order].reset_index(drop=True)
    log: list[str] = []
    per_fold = [layout.score(test, splits, f, log) for f in range(splits.n_outer)]
    metrics = summarise(per_fold, spec.metrics)
    primary = metrics[spec.metrics[0]]
    stored = lines.assign(_part=(lines["part"] == "test").astype(np.int8))
    stored = stored.sort_values(["outer_fold", "_part", "inner_fold", "row"], kind="stable")
    stored = stored.drop(columns="_part").reset_index(drop=True)
    return ScoredRun(primary["mean"], primary["std"], metrics, per_fold, stored, log)


def check_supported(task_type: str) -> None:
    """InvalidInput unless predictions of ``task_type`` tasks can be uploaded."""
    if task_type not in SUPPORTED_TYPES:
        raise InvalidInput(
            f"uploading predictions for {task_type} tasks is not supported yet; "
            f"it is for {', '.join(SUPPORTED_TYPES)} tasks",
            details={"task_type": task_type},
        )


# -- rows and folds ---------------------------------------------------------------------


def _ids(values: npt.ArrayLike) -> str:
    """The first few values, and how many more: ``3, 7, 9, 12, 15 and 38 more``."""
    array = np.asarray(values)
    more = f" and {array.size - SHOWN} more" if array.size > SHOWN else ""
    return ", ".join(str(v) for v in array[:SHOWN]) + more


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _integers(frame: pd.DataFrame, name: str, what: str) -> npt.NDArray[np.int64]:
    column = frame[name]
    missing = int(column.isna().sum())
    if missing:
        raise InvalidInput(
            f"column {name!r} has {_n(missing, 'missing value')}", details={"column": name}
        )
    values = column.to_numpy()
    if values.dtype.kind == "f" and np.all((np.mod(values, 1) == 0) & (np.abs(values) < 2**62)):
        values = values.astype(np.int64)  # integers read as floats (a CSV column with gaps)
    if values.dtype.kind not in "iu":
        raise InvalidInput(
            f"column {name!r} must hold integer {what}, got {column.dtype}",
            details={"column": name},
        )
    return values.astype(np.int64)


def _fold_columns(lines: pd.DataFrame, splits: Splits) -> pd.DataFrame:
    """``lines`` with checked ``row``, ``outer_fold``, ``part``, ``inner_fold`` columns."""
    n = splits.n_rows
    row = _integers(lines, "row", "row ids")
    bad = row[(row < 0) | (row >= n)]
    if bad.size:
        raise InvalidInput(
            f"row ids out of range (the task has {n} rows, ids 0..{n - 1}): {_ids(bad)}",
            details={"column": "row", "out_of_range": bad[:SHOWN].tolist()},
        )
    part = np.full(len(lines), "test", dtype=object)
    if "part" in lines:
        part = lines["part"].astype(object).to_numpy()
        unknown = sorted({str(p) for p in part if p not in PARTS})
        if unknown:
            raise InvalidInput(
                f"column 'part' must be 'test' or 'oof', got {', '.join(map(repr, unknown))}",
                details={"column": "part"},
            )
    is_test = part == "test"
    given = "outer_fold" in lines
    outer = _integers(lines, "outer_fold", "fold ids") if given else splits.outer[row]
    if not given and not is_test.all():
        raise InvalidInput("lines with part 'oof' need an outer_fold column")
    _check_test_rows(row[is_test], outer[is_test], splits, given)
    inner = _check_oof(row[~is_test], outer[~is_test], lines.loc[~is_test], splits)
    out = lines.drop(columns=["row", *(c for c in FOLD_COLUMNS if c in lines)])
    out.insert(0, "row", row)
    out.insert(1, "outer_fold", outer.astype(np.int16))
    out.insert(2, "part", pd.Series(part, dtype="string"))
    inner_all = np.full(len(lines), -1, dtype=np.int16)
    inner_all[~is_test] = inner
    out.insert(3, "inner_fold", inner_all)
    return out


def _check_test_rows(
    row: npt.NDArray[np.int64], outer: npt.NDArray[np.int64], splits: Splits, given: bool
) -> None:
    """Each row of an outer test part exactly once, in its own outer fold."""
    true_outer = splits.outer[row]
    never = row[true_outer < 0]
    if never.size:
        raise InvalidInput(
            f"predictions for rows that are not test rows of this task (only ever trained "
            f"on): {_ids(never)}; predict the test part of each outer fold (see the task's "
            "splits)",
            details={"column": "row", "not_test": never[:SHOWN].tolist()},
        )
    if given:
        wrong = np.flatnonzero(outer != true_outer)
        if wrong.size:
            i = int(wrong[0])
            raise InvalidInput(
                f"wrong outer_fold on {_n(wrong.size, 'test prediction')}: row {int(row[i])} "
                f"is test in outer fold {int(true_outer[i])}, not {int(outer[i])}",
                details={"column": "outer_fold", "row": int(row[i])},
            )
    values, counts = np.unique(row, return_counts=True)
    dup = values[counts > 1]
    if dup.size:
        raise InvalidInput(
            f"row ids given more than once among the test predictions: {_ids(dup)}; "
            "give one prediction per test row",
            details={"column": "row", "duplicated": dup[:SHOWN].tolist()},
        )
    expected = np.flatnonzero(splits.outer >= 0)
    missing = np.setdiff1d(expected, values, assume_unique=True)
    if missing.size:
        raise InvalidInput(
            f"no prediction for {missing.size} of the task's "
            f"{_n(expected.size, 'test row')}: {_ids(missing)}",
            details={"column": "row", "missing": missing[:SHOWN].tolist()},
        )


def _check_oof(
    row: npt.NDArray[np.int64], outer: npt.NDArray[np.int64], lines: pd.DataFrame, splits: Splits
) -> npt.NDArray[np.int16]:
    """The inner fold of every ``oof`` line, each a validated row of its outer fold, once."""
    if not row.size:
        return np.empty(0, dtype=np.int16)
    bad = outer[(outer < 0) | (outer >= splits.n_outer)]
    if bad.size:
        raise InvalidInput(
            f"outer_fold must lie in 0..{splits.n_outer - 1}, got {_ids(np.unique(bad))}",
            details={"column": "outer_fold"},
        )
    inner = np.stack(splits.inner)[outer, row]
    stray = row[inner < 0]
    if stray.size:
        raise InvalidInput(
            f"'oof' predictions for rows no inner fold of their outer fold validates: "
            f"{_ids(stray)}",
            details={"column": "row", "not_validated": stray[:SHOWN].tolist()},
        )
    if "inner_fold" in lines:
        given = _integers(lines, "inner_fold", "fold ids")
        wrong = np.flatnonzero(given != inner)
        if wrong.size:
            i = int(wrong[0])
            raise InvalidInput(
                f"wrong inner_fold on {_n(wrong.size, 'oof prediction')}: row {int(row[i])} "
                f"is validated by inner fold {int(inner[i])} of outer fold {int(outer[i])}, "
                f"not {int(given[i])}",
                details={"column": "inner_fold", "row": int(row[i])},
            )
    pairs = np.unique(np.stack([outer, row]), axis=1, return_counts=True)
    dup = pairs[0][1][pairs[1] > 1]
    if dup.size:
        raise InvalidInput(
            f"rows with more than one 'oof' prediction in the same outer fold: {_ids(dup)}",
            details={"column": "row", "duplicated": dup[:SHOWN].tolist()},
        )
    return inner.astype(np.int16)


# -- prediction columns per task type ---------------------------------------------------


class _Layout:
    """The prediction columns a task expects, their checks and scoring."""

    def __init__(self, spec: TaskSpec, targets: pd.DataFrame) -> None:
        self.spec = spec
        self.multi = spec.type == "multitarget"
        names = spec.target_columns
        self.targets = targets[names]
        self.y = targets[names].to_numpy() if self.multi else targets[names[0]].to_numpy()
        self.classes = np.unique(self.y) if spec.type in ("binary", "multiclass") else None
        self.needs_scores = any(get_metric(m).needs_scores for m in spec.metrics)
        self.proba = [] if self.classes is None else [f"proba_{c}" for c in self.classes]
        if spec.type == "anomaly":
            self.values = ["score"]
        elif self.multi:
            self.values = [f"prediction_{t}" for t in names]
        else:
            self.values = ["prediction"]

    def check_columns(self, lines: pd.DataFrame) -> pd.DataFrame:
        columns = [str(c) for c in lines.columns]
        required = ["row", *self.values]
        has_proba = any(c in columns for c in self.proba)
        if self.proba and (self.needs_scores or has_proba):
            required += self.proba
        missing = [c for c in required if c not in columns]
        allowed = {*required, *self.proba, *FOLD_COLUMNS}
        extra = [c for c in columns if c not in allowed]
        expected = ", ".join(required) + f" (optional: {', '.join(FOLD_COLUMNS)})"
        why = (
            f"; the task's metrics {', '.join(self.spec.metrics)} need a probability per class"
            if missing and set(missing) <= set(self.proba) and self.needs_scores
            else ""
        )
        if missing:
            raise InvalidInput(
                f"the predictions lack column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(map(repr, missing))}{why}; a {self.spec.type} task expects "
                f"{expected}",
                details={"missing_columns": missing, "expected": required},
            )
        if extra:
            raise InvalidInput(
                f"unexpected column{'s' if len(extra) > 1 else ''} "
                f"{', '.join(map(repr, extra))}; a {self.spec.type} task expects {expected}",
                details={"unexpected_columns": extra, "expected": required},
            )
        if len(set(columns)) != len(columns):
            raise InvalidInput("the predictions name a column twice")
        keep = ["row", *[c for c in FOLD_COLUMNS if c in columns], *self.values]
        keep += [c for c in self.proba if c in columns]
        return lines.set_axis(columns, axis=1)[keep]

    def check_values(self, lines: pd.DataFrame) -> pd.DataFrame:
        out = lines.copy()
        for j, name in enumerate(self.values):
            target = self.targets.iloc[:, j] if self.multi else self.targets.iloc[:, 0]
            if self.classes is not None:
                out[name] = _labels(out[name], self.classes)
            elif self.multi and not pd.api.types.is_numeric_dtype(target):
                out[name] = _labels(out[name], np.unique(target.to_numpy()))
            else:
                out[name] = _numbers(out[name])
        if self.proba and self.proba[0] in out:
            out[self.proba] = _probabilities(out[self.proba])
        return out

    def score(self, test: pd.DataFrame, splits: Splits, f: int, log: list[str]) -> Scores:
        """The task's metrics on outer fold ``f``'s test part (``test`` sorted by row)."""
        rows = splits.train_test(f)[1]
        part = test.iloc[np.searchsorted(test["row"].to_numpy(), rows)]
        y_true = self.y[rows]

        def note(line: str) -> None:
            log.append(f"fold_{f}: {line}")

        if self.spec.type == "anomaly":
            score = part["score"].to_numpy(dtype=np.float64)
            return score_predictions(self.spec.metrics, y_true, None, score, log=note)
        pred = part[self.values].to_numpy() if self.multi else part["prediction"].to_numpy()
        proba = None
        if self.proba and self.proba[0] in part:
            proba = part[self.proba].to_numpy(dtype=np.float64)
        return score_predictions(
            self.spec.metrics, y_true, pred, proba, classes=self.classes, log=note
        )


def _first(bad: npt.NDArray[np.bool_]) -> str:
    return f"first at line {int(np.argmax(bad))}"


def _labels(series: pd.Series, classes: np.ndarray) -> pd.Series:
    """Predicted labels as the target's values (``"1"`` read from CSV matches class 1)."""
    name = str(series.name)
    missing = series.isna().to_numpy()
    if missing.any():
        raise InvalidInput(
            f"column {name!r} has {_n(int(missing.sum()), 'missing value')} ({_first(missing)})",
            details={"column": name},
        )
    if series.isin(list(classes)).all():
        return series
    by_text = {str(_plain(c)): c for c in classes}
    text = series.map(lambda v: str(_plain(v)))
    known = text.isin(list(by_text)).to_numpy()
    if not known.all():
        unknown = sorted(set(text[~known]))
        raise InvalidInput(
            f"column {name!r} holds labels that are not classes of the task: "
            f"{', '.join(map(repr, unknown[:SHOWN]))} (on {_n(int((~known).sum()), 'line')}); "
            f"the classes are {', '.join(show(c) for c in classes[:20])}",
            details={"column": name, "unknown": unknown[:SHOWN]},
        )
    return pd.Series([by_text[t] for t in text], name=name, index=series.index, dtype=object)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _numbers(series: pd.Series) -> pd.Series:
    name = str(series.name)
    if series.dtype.kind not in "biuf":
        raise InvalidInput(
            f"column {name!r} must be numeric, got {series.dtype}", details={"column": name}
        )
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        raise InvalidInput(
            f"column {name!r} has {_n(int(bad.sum()), 'missing or infinite value')} "
            f"({_first(bad)})",
            details={"column": name},
        )
    return pd.Series(values, name=name, index=series.index)


def _probabilities(frame: pd.DataFrame) -> pd.DataFrame:
    """Finite values in 0..1 whose rows sum to 1 (renormalised within rounding)."""
    out = frame.apply(_numbers)
    values = out.to_numpy(dtype=np.float64, copy=True)
    outside = (values < 0) | (values > 1)
    if outside.any():
        j = int(np.flatnonzero(outside.any(axis=0))[0])
        raise InvalidInput(
            f"column {out.columns[j]!r} holds probabilities outside 0..1 ({_first(outside[:, j])})",
            details={"column": out.columns[j]},
        )
    if values.shape[1] < 2:
        return out
    sums = values.sum(axis=1)
    off = ~np.isclose(sums, 1.0, rtol=float(np.sqrt(np.finfo(np.float64).eps)), atol=0.0)
    far = np.abs(sums - 1.0) > SUM_TOLERANCE
    if far.any():
        i = int(np.argmax(far))
        raise InvalidInput(
            f"the class probabilities on {_n(int(far.sum()), 'line')} do not sum to 1 "
            f"(line {i}: {sums[i]:.6g}); give one probability per class",
            details={"columns": list(out.columns)},
        )
    values[off] /= sums[off, None]
    return pd.DataFrame(values, columns=out.columns, index=out.index)
