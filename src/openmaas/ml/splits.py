"""Train/test folds of a task, computed once per dataset version and stored as Parquet.

:func:`compute_splits` turns a :class:`~openmaas.ml.tasks.TaskSpec` and the
columns it reads (:func:`~openmaas.ml.tasks.split_columns`) into a
:class:`Splits`: for every row its outer fold, and per outer fold its inner
(tuning) fold. :func:`rebase_splits` carries splits over to a version that
appends rows, leaving the old rows' folds untouched.

Fold ids, one int16 per row::

    outer      f >= 0  the row is test in outer fold f
               -1      the row is never test (a holdout's training rows)
    inner[f]   i >= 0  the row validates inner fold i of outer fold f
               -1      the row is not in outer fold f's training part
               -2      time-ordered only: the earliest block, never validation

Training parts: outer fold f trains on rows whose outer fold is not f; when
``time_ordered``, only on rows that are never test or test in an earlier fold
(``-1 <= outer < f``), so predefined folds of sequence tasks act as rolling
origins. Inner fold i trains on the other inner folds of the training part;
when ``time_ordered``, on the earliest block and inner folds before i.

Every split is deterministic given ``protocol.seed``. Each test or validation
part has at least one row and each training part at least two, or the split is
refused with :class:`~openmaas.errors.InvalidInput` naming the problem. Rows
are 0-based positions in dataset order; a missing target (or group, time, fold
or stratify value) is an error for every task type, anomaly labels included.
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from openmaas.errors import InvalidFile, InvalidInput
from openmaas.ml import _folds
from openmaas.ml._folds import APPENDED, NEVER_TEST, NOT_TRAINING, TEST, TRAIN_ONLY, Columns, Scope
from openmaas.ml.tasks import (
    MAX_FOLDS,
    GroupSplit,
    HoldoutSplit,
    KFoldSplit,
    PredefinedColumnSplit,
    PredefinedIndicesSplit,
    TaskSpec,
    TimeSplit,
    check_fold_indices,
    split_columns,
)

__all__ = ["NEVER_TEST", "NOT_TRAINING", "TRAIN_ONLY", "Splits", "compute_splits", "rebase_splits"]

Index = npt.NDArray[np.int64]
Folds = npt.NDArray[np.int16]

_METADATA_KEY = b"openmaas.splits"
_FORMAT_VERSION = 1
_INNER_COLUMN = re.compile(r"inner_(\d+)")


def _training_mask(outer: Folds, f: int, time_ordered: bool) -> npt.NDArray[np.bool_]:
    mask: npt.NDArray[np.bool_] = (
        (outer == NEVER_TEST) | ((outer >= 0) & (outer < f)) if time_ordered else outer != f
    )
    return mask


@dataclass(frozen=True, eq=False)
class Splits:
    """Outer and inner fold ids of every row (see the module docstring for their meaning).

    The arrays are validated, copied to int16 and made read-only on creation.
    """

    outer: Folds
    inner: tuple[Folds, ...]
    n_inner: int
    time_ordered: bool = False

    def __post_init__(self) -> None:
        outer = _as_folds(self.outer, "outer")
        inner = tuple(_as_folds(a, f"inner_{f}") for f, a in enumerate(self.inner))
        n_outer = len(inner)
        if n_outer < 1 or self.n_inner < 2:
            raise InvalidInput(
                f"splits need an outer and 2+ inner folds, got {n_outer}, {self.n_inner}"
            )
        if outer.min(initial=0) < NEVER_TEST or outer.max(initial=0) >= n_outer:
            raise InvalidInput(f"outer fold ids must lie in -1..{n_outer - 1}")
        low = TRAIN_ONLY if self.time_ordered else NOT_TRAINING
        for f, folds in enumerate(inner):
            if folds.shape != outer.shape:
                raise InvalidInput(f"inner_{f} has {folds.size} rows, outer has {outer.size}")
            if folds.min(initial=0) < low or folds.max(initial=0) >= self.n_inner:
                raise InvalidInput(f"inner_{f} fold ids must lie in {low}..{self.n_inner - 1}")
            if not np.array_equal(
                folds != NOT_TRAINING, _training_mask(outer, f, self.time_ordered)
            ):
                raise InvalidInput(
                    f"inner_{f} is -1 exactly outside outer fold {f}'s training part"
                )
        object.__setattr__(self, "outer", outer)
        object.__setattr__(self, "inner", inner)

    @property
    def n_outer(self) -> int:
        return len(self.inner)

    @property
    def n_rows(self) -> int:
        return int(self.outer.size)

    def train_test(self, f: int) -> tuple[Index, Index]:
        """Row indices of outer fold ``f``'s training and test parts."""
        self._check_fold(f, self.n_outer, "outer fold")
        train = _training_mask(self.outer, f, self.time_ordered)
        return np.flatnonzero(train), np.flatnonzero(self.outer == f)

    def inner_train_valid(self, f: int, i: int) -> tuple[Index, Index]:
        """Row indices of inner fold ``i`` of outer fold ``f``: training and validation."""
        self._check_fold(f, self.n_outer, "outer fold")
        self._check_fold(i, self.n_inner, "inner fold")
        folds = self.inner[f]
        if self.time_ordered:
            train = (folds == TRAIN_ONLY) | ((folds >= 0) & (folds < i))
        else:
            train = (folds >= 0) & (folds != i)
        return np.flatnonzero(train), np.flatnonzero(folds == i)

    @staticmethod
    def _check_fold(f: int, n: int, what: str) -> None:
        if not 0 <= f < n:
            raise InvalidInput(f"{what} {f} does not exist; valid: 0..{n - 1}")

    def to_arrow(self) -> pa.Table:
        """A table with ``row``, ``outer`` and ``inner_0..inner_{n_outer-1}`` columns."""
        columns: dict[str, Any] = {
            "row": np.arange(self.n_rows, dtype=np.int64),
            "outer": self.outer,
        }
        columns.update({f"inner_{f}": folds for f, folds in enumerate(self.inner)})
        about = {
            "version": _FORMAT_VERSION,
            "n_inner": self.n_inner,
            "time_ordered": self.time_ordered,
        }
        return pa.table(columns, metadata={_METADATA_KEY: json.dumps(about).encode()})

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Splits:
        """Read :meth:`to_arrow`'s table back; rows may come in any order."""
        inner_ids = sorted(
            int(m[1]) for c in table.column_names if (m := _INNER_COLUMN.fullmatch(c))
        )
        if inner_ids != list(range(len(inner_ids))) or not {"row", "outer"} <= set(
            table.column_names
        ):
            raise InvalidFile("split table needs columns row, outer and inner_0..inner_{n-1}")
        try:
            about = json.loads((table.schema.metadata or {})[_METADATA_KEY])
            version, n_inner = about["version"], int(about["n_inner"])
            time_ordered = bool(about["time_ordered"])
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidFile(f"split table lacks valid {_METADATA_KEY.decode()!r} metadata") from e
        if version != _FORMAT_VERSION:
            raise InvalidFile(
                f"split table has format version {version}, expected {_FORMAT_VERSION}"
            )
        if any(column.null_count for column in table.columns):
            raise InvalidFile("split table has missing values")
        rows = table["row"].to_numpy()
        order = np.argsort(rows, kind="stable")
        if not np.array_equal(rows[order], np.arange(len(rows))):
            raise InvalidFile(f"split table rows must be 0..{len(rows) - 1}, each once")
        try:
            return cls(
                table["outer"].to_numpy()[order],
                tuple(table[f"inner_{f}"].to_numpy()[order] for f in inner_ids),
                n_inner,
                time_ordered,
            )
        except InvalidInput as e:
            raise InvalidFile(f"split table is inconsistent: {e.message}") from e

    def to_parquet_bytes(self) -> bytes:
        sink = io.BytesIO()
        pq.write_table(self.to_arrow(), sink)
        return sink.getvalue()

    @classmethod
    def from_parquet(cls, source: str | os.PathLike[str] | IO[bytes] | bytes) -> Splits:
        """Read a split file written by :meth:`to_parquet_bytes` from a path, file or bytes."""
        try:
            table = pq.read_table(pa.BufferReader(source) if isinstance(source, bytes) else source)
        except pa.ArrowException as e:
            raise InvalidFile(f"cannot read the split file: {e}") from e
        return cls.from_arrow(table)


def _as_folds(values: npt.ArrayLike, name: str) -> Folds:
    array = np.asarray(values)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise InvalidInput(f"{name} must be a 1-d integer array, got {array.dtype} {array.shape}")
    if array.size and (array.min() < -2 or array.max() > MAX_FOLDS):
        raise InvalidInput(f"{name} has fold ids outside -2..{MAX_FOLDS}")
    out = array.astype(np.int16)  # always a copy
    out.setflags(write=False)
    return out


# -- computing --------------------------------------------------------------------------


def compute_splits(spec: TaskSpec, frame: pd.DataFrame) -> Splits:
    """The outer and inner folds of ``spec`` over ``frame``'s rows (in dataset order).

    ``frame`` needs the columns :func:`~openmaas.ml.tasks.split_columns` names;
    others are ignored. Raises :class:`InvalidInput` naming the problem.
    """
    cols = _read(spec, frame)
    outer, n_outer = _outer(spec, cols, frame, np.arange(cols.n), Scope())
    inner = tuple(_inner(spec, cols, outer, f) for f in range(n_outer))
    return _checked(Splits(outer, inner, spec.protocol.inner_folds, spec.time_ordered))


def _outer(
    spec: TaskSpec, cols: Columns, frame: pd.DataFrame, rows: Index, scope: Scope
) -> tuple[Folds, int]:
    outer, seed = spec.protocol.outer, spec.protocol.seed
    if isinstance(outer, HoldoutSplit):
        return _folds.holdout(cols, rows, outer.test_fraction, seed, scope), 1
    if isinstance(outer, KFoldSplit):
        return _folds.kfold(cols, rows, outer.k, seed, scope, grouped=False), outer.k
    if isinstance(outer, GroupSplit):
        if outer.k is not None:
            return _folds.kfold(cols, rows, outer.k, seed, scope, grouped=True), outer.k
        assert outer.test_fraction is not None
        return _folds.group_holdout(cols, rows, outer.test_fraction, seed, scope), 1
    if isinstance(outer, TimeSplit):
        return _folds.time_holdout(cols, rows, outer.test_fraction), 1
    if isinstance(outer, PredefinedColumnSplit):
        labels = frame[outer.column].reset_index(drop=True)
        folds, n_outer = _folds.labels_to_folds(labels, outer.column, MAX_FOLDS)
        return folds[rows], n_outer
    assert isinstance(outer, PredefinedIndicesSplit)
    check_fold_indices(outer.folds, cols.n)
    folds = np.full(cols.n, NEVER_TEST, dtype=np.int16)
    for f, test in enumerate(outer.folds):
        folds[test] = f
    return folds[rows], len(outer.folds)


def _inner(spec: TaskSpec, cols: Columns, outer: Folds, f: int) -> Folds:
    rows = np.flatnonzero(_training_mask(outer, f, spec.time_ordered))
    folds = np.full(cols.n, NOT_TRAINING, dtype=np.int16)
    folds[rows] = _inner_folds(spec, cols, rows, Scope.inner(f))
    return folds


def _inner_folds(spec: TaskSpec, cols: Columns, rows: Index, scope: Scope) -> Folds:
    k = spec.protocol.inner_folds
    if spec.time_ordered:
        return _folds.time_blocks(cols, rows, k, scope)
    grouped = cols.groups is not None
    return _folds.kfold(cols, rows, k, spec.protocol.seed, scope, grouped=grouped)


def _checked(splits: Splits) -> Splits:
    """``splits`` if every test/validation part has a row and every inner training part two.

    (Outer training parts then have at least three rows.)
    """
    for f in range(splits.n_outer):
        if not (splits.outer == f).any():
            raise InvalidInput(f"outer fold {f} has no test rows")
        folds = splits.inner[f]
        valid = np.bincount(folds[folds >= 0], minlength=splits.n_inner)
        if splits.time_ordered:
            trains = np.count_nonzero(folds == TRAIN_ONLY) + np.concatenate(
                ([0], np.cumsum(valid)[:-1])
            )
        else:
            trains = valid.sum() - valid
        for i in range(splits.n_inner):
            if valid[i] == 0:
                raise InvalidInput(f"inner fold {i} of outer fold {f} has no validation rows")
            if trains[i] < 2:
                raise InvalidInput(
                    f"inner fold {i} of outer fold {f} has {_folds.rows_text(int(trains[i]))} "
                    "to train on; at least 2 are needed"
                )
    return splits


def _read(spec: TaskSpec, frame: pd.DataFrame) -> Columns:
    """Check the split columns (present, no missing values, classes) and encode them."""
    roles = _roles(spec)
    for name in split_columns(spec):
        if name not in frame.columns:
            raise InvalidInput(f"the frame lacks the {roles[name]} column {name!r}")
        _no_missing(frame[name], roles[name])
    if len(frame) == 0:
        raise InvalidInput("the dataset has no rows")
    if spec.type in ("binary", "multiclass"):
        _check_classes(spec, frame[spec.target_columns[0]])
    kw: dict[str, Any] = {}
    if (strata := spec.stratify_by) is not None:
        codes, values = pd.factorize(frame[strata])
        is_target = bool(spec.target_columns) and strata == spec.target_columns[0]
        kw |= {"strata": codes.astype(np.int64), "strata_values": np.asarray(values)}
        kw |= {"strata_column": strata, "strata_is_target": is_target}
    outer = spec.protocol.outer
    if isinstance(outer, GroupSplit):
        codes, _ = pd.factorize(frame[outer.group_column])
        kw |= {"groups": codes.astype(np.int64), "group_column": outer.group_column}
    if spec.time_ordered and spec.time_column is not None:
        kw["times"] = frame[spec.time_column].reset_index(drop=True)
    return Columns(n=len(frame), **kw)


def _roles(spec: TaskSpec) -> dict[str, str]:
    roles: dict[str, str] = {}
    if spec.stratify_by is not None:
        roles[spec.stratify_by] = "stratify"
    outer = spec.protocol.outer
    if isinstance(outer, GroupSplit):
        roles[outer.group_column] = "group"
    if isinstance(outer, PredefinedColumnSplit):
        roles[outer.column] = "predefined fold"
    if spec.time_column is not None:
        roles[spec.time_column] = "time"
    roles.update(dict.fromkeys(spec.target_columns, "target"))
    return roles


def _no_missing(series: pd.Series, role: str) -> None:
    missing = series.isna().to_numpy()
    if missing.any():
        count, first = int(missing.sum()), int(np.argmax(missing))
        noun = "value" if count == 1 else "values"
        raise InvalidInput(
            f"{role} column {series.name!r} has {count} missing {noun} (first at row {first})",
            details={"column": series.name, "missing": count, "first_row": first},
        )


def _check_classes(spec: TaskSpec, target: pd.Series) -> None:
    classes = sorted(pd.unique(target.to_numpy()), key=str)
    shown = ", ".join(_folds.show(c) for c in classes[:5]) + (", ..." if len(classes) > 5 else "")
    details = {"column": target.name, "classes": len(classes)}
    if spec.type == "binary" and len(classes) != 2:
        word = "class" if len(classes) == 1 else "classes"
        raise InvalidInput(
            f"binary target {target.name!r} has {len(classes)} {word} ({shown}); "
            "expected exactly 2",
            details=details,
        )
    if len(classes) < 2:
        raise InvalidInput(
            f"{spec.type} target {target.name!r} has a single class ({shown}); "
            "at least 2 are needed",
            details=details,
        )


# -- rebasing ---------------------------------------------------------------------------


def rebase_splits(old: Splits, spec: TaskSpec, new_frame: pd.DataFrame, n_old: int) -> Splits:
    """Splits for a dataset version that appends rows to the ``n_old`` rows ``old`` covers.

    ``new_frame`` holds all rows of the new version, the old ones first and
    unchanged. Old rows keep their outer and inner folds exactly. Appended rows
    get folds of their own, computed with the task's protocol on the appended
    rows alone:

    * holdout: a holdout at the same test fraction (stratified as before);
    * kfold: spread over the same k folds;
    * group: rows of a group seen before join its folds, outer and inner; rows
      of new groups are split over the same folds;
    * time: every appended row is test, since it is later than all training
      rows; the test part thus grows (re-create the task to re-split). Appended
      rows no later than the latest old training row are refused;
    * predefined_column: the fold its column names, among the existing folds;
    * predefined_indices: never test (the index file names old rows only).

    In each outer fold's training part, appended rows get inner folds the same
    way; for time-ordered splits they join the latest inner block.
    """
    _check_rebase(old, spec, new_frame, n_old)
    if len(new_frame) == n_old:
        return old
    cols = _read(spec, new_frame)
    added = np.arange(n_old, cols.n)
    new_outer = _rebase_outer(old, spec, cols, new_frame, added)
    outer = np.concatenate([old.outer, new_outer])
    inner = []
    for f in range(old.n_outer):
        folds = np.concatenate([old.inner[f], np.full(added.size, NOT_TRAINING, dtype=np.int16)])
        rows = added[_training_mask(new_outer, f, old.time_ordered)]
        folds[rows] = _rebase_inner(old, spec, cols, f, rows)
        inner.append(folds)
    return _checked(Splits(outer, tuple(inner), old.n_inner, old.time_ordered))


def _check_rebase(old: Splits, spec: TaskSpec, new_frame: pd.DataFrame, n_old: int) -> None:
    if old.n_rows != n_old:
        raise InvalidInput(f"the old splits cover {_folds.rows_text(old.n_rows)}, not {n_old}")
    if len(new_frame) < n_old:
        raise InvalidInput(
            f"the new version has {_folds.rows_text(len(new_frame))}, "
            f"fewer than the {n_old} old ones"
        )
    declared = _declared_folds(spec)
    if (
        old.n_inner != spec.protocol.inner_folds
        or old.time_ordered != spec.time_ordered
        or declared not in (None, old.n_outer)
    ):
        raise InvalidInput("the old splits were not made with this task's protocol")


def _declared_folds(spec: TaskSpec) -> int | None:
    """The number of outer folds ``spec`` asks for, or None if the data decides."""
    outer = spec.protocol.outer
    if isinstance(outer, KFoldSplit | GroupSplit) and outer.k is not None:
        return outer.k
    if isinstance(outer, PredefinedIndicesSplit):
        return len(outer.folds)
    return None if isinstance(outer, PredefinedColumnSplit) else 1


def _rebase_outer(
    old: Splits, spec: TaskSpec, cols: Columns, frame: pd.DataFrame, added: Index
) -> Folds:
    outer = spec.protocol.outer
    if isinstance(outer, TimeSplit):
        _check_later(old, cols, added)
        return np.full(added.size, TEST, dtype=np.int16)
    if isinstance(outer, PredefinedIndicesSplit):
        return np.full(added.size, NEVER_TEST, dtype=np.int16)
    if isinstance(outer, GroupSplit):
        folds = _folds.inherit(cols, np.arange(old.n_rows), old.outer, added)
        fresh = folds == -3
        if fresh.any():
            folds[fresh], _ = _outer(spec, cols, frame, added[fresh], APPENDED)
        return folds
    folds, n_outer = _outer(spec, cols, frame, added, APPENDED)
    if n_outer != old.n_outer:
        raise InvalidInput(
            f"the appended rows make {n_outer} outer folds, but the old splits have {old.n_outer}"
        )
    return folds


def _check_later(old: Splits, cols: Columns, added: Index) -> None:
    assert cols.times is not None
    latest = cols.times.iloc[np.flatnonzero(old.outer == NEVER_TEST)].max()
    early = np.flatnonzero((cols.times.iloc[added] <= latest).to_numpy())
    if early.size:
        raise InvalidInput(
            f"appended row {int(added[early[0]])} is not later than the latest training row; "
            "a time split only takes later rows (create a new task to re-split)"
        )


def _rebase_inner(old: Splits, spec: TaskSpec, cols: Columns, f: int, rows: Index) -> Folds:
    if old.time_ordered:
        return np.full(rows.size, old.n_inner - 1, dtype=np.int16)
    folds = np.full(rows.size, -3, dtype=np.int16)
    if cols.groups is not None:
        known = np.flatnonzero(old.inner[f] != NOT_TRAINING)
        folds = _folds.inherit(cols, known, old.inner[f][known], rows)
    fresh = folds == -3
    if fresh.any():
        folds[fresh] = _inner_folds(spec, cols, rows[fresh], Scope.inner(f, appended=True))
    return folds
