"""Fold-assignment primitives behind :mod:`openmaas.ml.splits`.

Each function assigns folds to a subset ``rows`` of a dataset (0-based positions
in dataset order) and returns one int16 fold id per position of ``rows``. A
:class:`Scope` words error messages for where the split happens: the dataset,
the appended rows of a rebase, or the training part of an outer fold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.model_selection import (
    GroupKFold,
    GroupShuffleSplit,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    train_test_split,
)

from openmaas.errors import InvalidInput

Index = npt.NDArray[np.int64]
Folds = npt.NDArray[np.int16]

TEST = 0
"""Outer fold of a holdout's test rows."""
NEVER_TEST = -1
"""Outer fold of rows that are only ever trained on."""
NOT_TRAINING = -1
"""Inner fold of rows outside an outer fold's training part."""
TRAIN_ONLY = -2
"""Inner fold of the earliest block of time-ordered inner folds: never validation."""


@dataclass(frozen=True)
class Scope:
    """Where a split happens, for messages: "the dataset has 3 rows, fewer than the 5 folds"."""

    has: str = "the dataset has"
    where: str = ""
    fold_word: str = "folds"

    @classmethod
    def inner(cls, outer_fold: int, appended: bool = False) -> Scope:
        part = f"the training part of outer fold {outer_fold}"
        if appended:
            where = f" among the appended rows in {part}"
            return cls(f"the appended rows in {part} have", where, "inner folds")
        return cls(f"{part} has", f" in {part}", "inner folds")


APPENDED = Scope("the appended rows have", " among the appended rows")


@dataclass(frozen=True)
class Columns:
    """The validated columns a split reads, as arrays over all rows of the frame."""

    n: int
    strata: Index | None = None
    strata_values: npt.NDArray[Any] | None = None
    strata_column: str | None = None
    strata_is_target: bool = True
    groups: Index | None = None
    group_column: str | None = None
    times: pd.Series | None = None

    def stratum(self, code: int) -> str:
        assert self.strata_values is not None
        value = show(self.strata_values[code])
        if self.strata_is_target:
            return f"class {value}"
        return f"value {value} of stratify column {self.strata_column!r}"


def show(value: Any) -> str:
    """A value as messages quote it: 'a' for strings, 3 for numbers."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value) if isinstance(value, str) else str(value)


def rows_text(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _check_strata(cols: Columns, rows: Index, parts: int, scope: Scope, parts_word: str) -> None:
    assert cols.strata is not None
    counts = np.bincount(cols.strata[rows])
    present = np.flatnonzero(counts)
    smallest = int(present[np.argmin(counts[present])])
    if counts[smallest] < parts:
        raise InvalidInput(
            f"{cols.stratum(smallest)} has {rows_text(int(counts[smallest]))}{scope.where}, "
            f"fewer than the {parts} {parts_word}",
            details={"stratum": show(cols.strata_values[smallest])},  # type: ignore[index]
        )


def _n_groups(cols: Columns, rows: Index) -> int:
    assert cols.groups is not None
    return len(np.unique(cols.groups[rows]))


def kfold(cols: Columns, rows: Index, k: int, seed: int, scope: Scope, grouped: bool) -> Folds:
    """k folds over ``rows``: stratified if ``cols.strata``, by group if ``grouped``."""
    n = len(rows)
    if grouped:
        n_groups = _n_groups(cols, rows)
        if n_groups < k:
            raise InvalidInput(
                f"{scope.has} {n_groups} groups in column {cols.group_column!r}, "
                f"fewer than the {k} {scope.fold_word}"
            )
    elif n < k:
        raise InvalidInput(f"{scope.has} {rows_text(n)}, fewer than the {k} {scope.fold_word}")
    strata = None if cols.strata is None else cols.strata[rows]
    groups = cols.groups[rows] if grouped and cols.groups is not None else None
    if strata is not None:
        _check_strata(cols, rows, k, scope, scope.fold_word)
    splitter: Any
    if groups is not None:
        splitter = (StratifiedGroupKFold if strata is not None else GroupKFold)(
            n_splits=k, shuffle=True, random_state=seed
        )
    else:
        splitter = (StratifiedKFold if strata is not None else KFold)(
            n_splits=k, shuffle=True, random_state=seed
        )
    folds = np.empty(n, dtype=np.int16)
    for f, (_, test) in enumerate(splitter.split(np.zeros((n, 1)), strata, groups)):
        folds[test] = f
    return folds


def holdout(cols: Columns, rows: Index, fraction: float, seed: int, scope: Scope) -> Folds:
    """One random holdout over ``rows`` (stratified if ``cols.strata``): 0 test, -1 train."""
    n = len(rows)
    n_test = math.ceil(fraction * n)  # as scikit-learn rounds
    if n - n_test < 1:
        raise InvalidInput(
            f"{scope.has} {rows_text(n)}, too few for a holdout with test_fraction {fraction}"
        )
    strata = None if cols.strata is None else cols.strata[rows]
    if strata is not None:
        _check_strata(cols, rows, 2, scope, "parts of a holdout split")
        n_classes = len(np.unique(strata))
        for part, size in (("test", n_test), ("training", n - n_test)):
            if size < n_classes:
                raise InvalidInput(
                    f"a stratified holdout of {rows_text(n)} at test_fraction {fraction} has "
                    f"{size} {part} rows, fewer than the {n_classes} classes{scope.where}"
                )
    _, test = train_test_split(np.arange(n), test_size=fraction, random_state=seed, stratify=strata)
    folds = np.full(n, NEVER_TEST, dtype=np.int16)
    folds[test] = TEST
    return folds


def group_holdout(cols: Columns, rows: Index, fraction: float, seed: int, scope: Scope) -> Folds:
    """One holdout of whole groups; ``fraction`` counts groups. Not stratified."""
    assert cols.groups is not None
    n_groups = _n_groups(cols, rows)
    if n_groups < 2:
        raise InvalidInput(
            f"{scope.has} {n_groups} group in column {cols.group_column!r}; "
            "a holdout split needs at least 2"
        )
    splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    _, test = next(splitter.split(np.zeros((len(rows), 1)), groups=cols.groups[rows]))
    folds = np.full(len(rows), NEVER_TEST, dtype=np.int16)
    folds[test] = TEST
    return folds


def _time_rank(cols: Columns, rows: Index) -> Index:
    """0-based rank of each row's time among ``rows``; equal times share the lowest rank."""
    assert cols.times is not None
    ranks: Index = cols.times.iloc[rows].rank(method="min").to_numpy().astype(np.int64)
    return ranks - 1


def time_holdout(cols: Columns, rows: Index, fraction: float) -> Folds:
    """The latest ``fraction`` of ``rows`` are test (0); a tie run at the cutoff trains."""
    n = len(rows)
    n_test = math.ceil(fraction * n)
    folds = np.full(n, NEVER_TEST, dtype=np.int16)
    folds[_time_rank(cols, rows) >= n - n_test] = TEST
    return folds


def time_blocks(cols: Columns, rows: Index, k: int, scope: Scope) -> Folds:
    """k time-ordered folds: ``rows`` cut into k+1 blocks by time; block b+1 validates fold b.

    The earliest block is never validation (``TRAIN_ONLY``); fold b trains on the
    blocks before its own. Equal times always share a block.
    """
    n = len(rows)
    if n < k + 1:
        raise InvalidInput(
            f"{scope.has} {rows_text(n)}, too few for {k} time-ordered "
            f"{scope.fold_word} ({k + 1} blocks)"
        )
    block = _time_rank(cols, rows) * (k + 1) // n
    return np.where(block == 0, TRAIN_ONLY, block - 1).astype(np.int16)


def labels_to_folds(series: pd.Series, column: str, max_folds: int) -> tuple[Folds, int]:
    """Folds named by a predefined column: 'train'/'test', or integers (-1 = train only)."""
    hint = "use 'train'/'test' or integer folds 0..k-1 (-1 = train only)"
    values = series.to_numpy()
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if numeric:
        numbers = values.astype(np.float64)
        bad = list(pd.unique(values[(numbers != np.round(numbers)) | (numbers < -1)]))
    else:
        bad = [v for v in pd.unique(values) if v not in ("train", "test")]
    if bad:
        shown = ", ".join(show(v) for v in sorted(bad, key=str)[:5])
        raise InvalidInput(
            f"predefined column {column!r} has unknown fold labels {shown}; {hint}",
            details={"column": column, "labels": [show(v) for v in bad[:20]]},
        )
    if not numeric:
        folds = np.where(values == "test", TEST, NEVER_TEST).astype(np.int16)
    else:
        ids = values.astype(np.int64)
        n_folds = int(ids.max()) + 1
        if n_folds > max_folds:
            raise InvalidInput(
                f"predefined column {column!r} names {n_folds} folds; "
                f"at most {max_folds} are allowed"
            )
        missing = np.setdiff1d(np.arange(n_folds), ids)
        if missing.size:
            raise InvalidInput(
                f"predefined column {column!r} has no rows in fold {int(missing[0])}; {hint}"
            )
        folds = ids.astype(np.int16)
    if not (folds >= 0).any():
        raise InvalidInput(f"predefined column {column!r} has no test rows")
    return folds, int(folds.max()) + 1


def inherit(
    cols: Columns, known: Index, known_folds: npt.NDArray[np.int16], rows: Index
) -> npt.NDArray[np.int16]:
    """The fold of each of ``rows`` whose group appears among ``known`` rows, else -3."""
    assert cols.groups is not None
    by_group = np.full(int(cols.groups.max()) + 1, -3, dtype=np.int16)
    by_group[cols.groups[known]] = known_folds
    return by_group[cols.groups[rows]]
