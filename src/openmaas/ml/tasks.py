"""Benchmark task definitions: what is predicted, how rows are split, how it is scored.

A :class:`TaskSpec` is what a user posts to create a task on a dataset version.
It is pure data: :func:`validate_task` checks it against the dataset's column
kinds and :func:`openmaas.ml.splits.compute_splits` turns it into fold indices.

Column kinds are those the dataset layer infers: ``numeric``, ``categorical``,
``boolean``, ``datetime`` and ``text``. Rows are numbered from 0 in dataset order.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from openmaas.errors import InvalidInput
from openmaas.ml.data.schema import ColumnKind
from openmaas.ml.metrics import NUMERIC_METRICS, default_metrics, get_metric, metrics_for

__all__ = [
    "ColumnKind",
    "GroupSplit",
    "HoldoutSplit",
    "KFoldSplit",
    "OuterSplit",
    "PredefinedColumnSplit",
    "PredefinedIndicesSplit",
    "Protocol",
    "RecommendationConfig",
    "SequenceConfig",
    "TaskSpec",
    "TaskType",
    "TimeSplit",
    "check_fold_indices",
    "split_columns",
    "validate_task",
]

TaskType = Literal[
    "binary", "multiclass", "regression", "multitarget", "anomaly", "recommendation", "sequence"
]

MAX_FOLDS = 100
"""Upper bound on outer and inner fold counts (fold ids are stored as int16)."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HoldoutSplit(_Spec):
    """One random train/test split; stratified for classification (see :class:`Protocol`)."""

    method: Literal["holdout"] = "holdout"
    test_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="Share of rows in the test part."
    )


class KFoldSplit(_Spec):
    """k random folds; every row is in the test part of exactly one fold."""

    method: Literal["kfold"] = "kfold"
    k: int = Field(default=5, ge=2, le=MAX_FOLDS, description="Number of folds.")


class TimeSplit(_Spec):
    """The latest rows in time are the test part: one global cutoff, for every task type.

    Rows are ordered by ``time_column`` (stable, so ties keep dataset order) and the
    last ``test_fraction`` of them are the test part. Rows sharing a timestamp are
    never separated: a run of equal times straddling the cutoff goes to training,
    so the test part may be a little smaller than asked. For sequence tasks the
    cutoff is global over all series, not per series: no training window ever
    sees a moment later than a test point of any series. Stratification does not
    apply; inner folds are time-ordered too.
    """

    method: Literal["time"] = "time"
    time_column: str = Field(description="Datetime or numeric column that orders the rows.")
    test_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="Share of rows in the test part."
    )


class GroupSplit(_Spec):
    """Folds by group: all rows of a group fall in the same fold, also in inner folds.

    Give either ``k`` (k-fold over groups, the default with k=5) or
    ``test_fraction`` (one holdout over groups, the fraction counting groups, not
    rows; not stratified).
    """

    method: Literal["group"] = "group"
    group_column: str = Field(description="Column whose values name the groups.")
    k: int | None = Field(default=None, ge=2, le=MAX_FOLDS, description="Number of group folds.")
    test_fraction: float | None = Field(
        default=None, gt=0, lt=1, description="Share of groups in the test part (holdout)."
    )

    @model_validator(mode="after")
    def _k_or_fraction(self) -> Self:
        if self.k is not None and self.test_fraction is not None:
            raise ValueError("a group split takes either k or test_fraction, not both")
        if self.k is None and self.test_fraction is None:
            self.k = 5
        return self


class PredefinedColumnSplit(_Spec):
    """A column names the fold of every row.

    Its values are either the strings ``"train"`` and ``"test"`` (one holdout fold)
    or integers: ``0..k-1`` name the fold in which the row is test, ``-1`` marks a
    row that is only ever trained on. Every fold must have rows.
    """

    method: Literal["predefined_column"] = "predefined_column"
    column: str = Field(description="Column holding 'train'/'test' or integer fold ids.")


class PredefinedIndicesSplit(_Spec):
    """Explicit test rows per fold, as read from an uploaded index file.

    ``folds[f]`` lists the 0-based rows that are test in fold ``f``. Folds must not
    overlap; rows listed in no fold are only ever trained on.
    """

    method: Literal["predefined_indices"] = "predefined_indices"
    folds: list[list[int]] = Field(
        min_length=1, max_length=MAX_FOLDS, description="Test row indices of each fold."
    )


OuterSplit = Annotated[
    HoldoutSplit
    | KFoldSplit
    | TimeSplit
    | GroupSplit
    | PredefinedColumnSplit
    | PredefinedIndicesSplit,
    Field(discriminator="method"),
]


class Protocol(_Spec):
    """How rows are split: an outer split for evaluation, inner folds for tuning."""

    outer: OuterSplit = Field(
        default_factory=lambda: HoldoutSplit(),
        description="The evaluation split; holdout 0.2 by default.",
    )
    inner_folds: int = Field(
        default=5,
        ge=2,
        le=MAX_FOLDS,
        description="k of the inner k-fold over each outer training part (time-ordered "
        "for time splits and sequence tasks, grouped for group splits).",
    )
    seed: int = Field(
        default=0, ge=0, description="Seed of every random choice; splits are reproducible."
    )
    stratify: bool = Field(
        default=True,
        description="Stratify outer and inner folds by the target for binary and multiclass "
        "tasks (by stratify_column if set, for any type). Ignored for time-ordered splits; "
        "predefined and group-holdout outer splits stay as given, their inner folds are "
        "stratified.",
    )
    stratify_column: str | None = Field(
        default=None,
        description="Stratify by this column instead, e.g. the user of a recommendation.",
    )

    @model_validator(mode="after")
    def _stratify_column_needs_stratify(self) -> Self:
        if self.stratify_column is not None and not self.stratify:
            raise ValueError("stratify_column is set but stratify is false")
        return self


class RecommendationConfig(_Spec):
    """Columns of an interaction table (one row per user-item interaction)."""

    user_column: str
    item_column: str
    rating_column: str | None = Field(
        default=None, description="Explicit rating, or the strength of an implicit interaction."
    )
    implicit: bool = Field(default=False, description="Interactions are implicit (clicks, views).")

    @model_validator(mode="after")
    def _explicit_needs_rating(self) -> Self:
        if not self.implicit and self.rating_column is None:
            raise ValueError("explicit recommendation needs a rating_column (or set implicit)")
        if self.user_column == self.item_column:
            raise ValueError("user_column and item_column must differ")
        return self


class SequenceConfig(_Spec):
    """Forecasting over many series in long format: one row per (series, time)."""

    series_column: str = Field(description="Column naming the series of each row.")
    time_column: str = Field(description="Datetime or numeric column ordering each series.")
    context_length: int = Field(ge=1, description="Past steps a model sees.")
    horizon: int = Field(ge=1, description="Future steps a model predicts.")


_ONE_TARGET = {"binary", "multiclass", "regression", "anomaly", "sequence"}
_SEQUENCE_OUTER = {"time", "predefined_column", "predefined_indices"}


class TaskSpec(_Spec):
    """A benchmark task on a dataset version."""

    type: TaskType
    target_columns: list[str] = Field(
        default_factory=list,
        description="One column for binary, multiclass, regression, anomaly (the label, "
        "used only for evaluation) and sequence; two or more for multitarget; the "
        "rating_column for recommendation (filled in if empty; empty for implicit "
        "feedback without one).",
    )
    metrics: list[str] = Field(
        default_factory=list,
        description="Metric names, the first being primary; the type's defaults if empty.",
    )
    protocol: Protocol = Field(default_factory=lambda: Protocol())
    recommendation: RecommendationConfig | None = None
    sequence: SequenceConfig | None = None

    @model_validator(mode="after")
    def _check_combination(self) -> Self:
        self._check_config()
        self._check_targets()
        self._check_outer()
        if not self.metrics:
            self.metrics = default_metrics(self.type)
        return self

    def _check_config(self) -> None:
        if self.type == "sequence" and self.sequence is None:
            raise ValueError("sequence tasks need series_column and time_column (in 'sequence')")
        if self.type == "recommendation" and self.recommendation is None:
            raise ValueError(
                "recommendation tasks need user_column and item_column (in 'recommendation')"
            )
        if self.sequence is not None and self.type != "sequence":
            raise ValueError(f"'sequence' is only for sequence tasks, not {self.type}")
        if self.recommendation is not None and self.type != "recommendation":
            raise ValueError(f"'recommendation' is only for recommendation tasks, not {self.type}")

    def _check_targets(self) -> None:
        targets = self.target_columns
        for name in targets:
            if targets.count(name) > 1:
                raise ValueError(f"target column {name!r} is listed twice")
        if self.type in _ONE_TARGET and len(targets) != 1:
            raise ValueError(
                f"{self.type} tasks need exactly one target column, got {len(targets)}"
            )
        if self.type == "multitarget" and len(targets) < 2:
            raise ValueError(
                f"multitarget tasks need at least two target columns, got {len(targets)}"
            )
        if self.recommendation is not None:
            rating = self.recommendation.rating_column
            expected = [] if rating is None else [rating]
            if not targets:
                self.target_columns = expected
            elif targets != expected:
                raise ValueError(
                    f"recommendation target_columns must be {expected} (the rating_column), "
                    f"got {targets}"
                )
        if self.sequence is not None:
            for role in ("series_column", "time_column"):
                if getattr(self.sequence, role) == targets[0]:
                    raise ValueError(f"the target {targets[0]!r} cannot also be the {role}")

    def _check_outer(self) -> None:
        outer = self.protocol.outer
        if self.type != "sequence" or self.sequence is None:
            return
        if outer.method not in _SEQUENCE_OUTER:
            raise ValueError(
                f"sequence tasks need a time or predefined outer split, not {outer.method!r} "
                "(random rows would leak the future into training)"
            )
        if isinstance(outer, TimeSplit) and outer.time_column != self.sequence.time_column:
            raise ValueError(
                f"the time split of a sequence task must use its time_column "
                f"{self.sequence.time_column!r}, not {outer.time_column!r}"
            )

    @property
    def time_ordered(self) -> bool:
        """Whether training only ever sees rows earlier than what it is tested on."""
        return self.type == "sequence" or self.protocol.outer.method == "time"

    @property
    def time_column(self) -> str | None:
        """The column that orders rows when :attr:`time_ordered`."""
        if isinstance(self.protocol.outer, TimeSplit):
            return self.protocol.outer.time_column
        return self.sequence.time_column if self.sequence is not None else None

    @property
    def stratify_by(self) -> str | None:
        """The column folds are stratified by, or None (see :attr:`Protocol.stratify`)."""
        protocol = self.protocol
        if not protocol.stratify or self.time_ordered:
            return None
        if protocol.stratify_column is not None:
            return protocol.stratify_column
        return self.target_columns[0] if self.type in ("binary", "multiclass") else None


def split_columns(spec: TaskSpec) -> list[str]:
    """The columns :func:`~openmaas.ml.splits.compute_splits` reads, without duplicates."""
    outer = spec.protocol.outer
    names = list(spec.target_columns)
    if spec.time_column is not None:
        names.append(spec.time_column)
    if isinstance(outer, GroupSplit):
        names.append(outer.group_column)
    if isinstance(outer, PredefinedColumnSplit):
        names.append(outer.column)
    if spec.stratify_by is not None:
        names.append(spec.stratify_by)
    return list(dict.fromkeys(names))


def validate_task(spec: TaskSpec, columns: Mapping[str, str], n_rows: int) -> None:
    """Check ``spec`` against a dataset with ``columns`` (name -> kind) and ``n_rows`` rows.

    Raises :class:`InvalidInput` naming the first problem: an unknown column, a
    column of the wrong kind, a metric that does not apply, fold indices out of
    range. Checks that need the values (classes, missing targets) happen when
    splitting.
    """
    for role, name in _referenced_columns(spec):
        if name not in columns:
            raise InvalidInput(
                f"unknown {role} column {name!r}; {_column_hint(name, columns)}",
                details={"column": name, "role": role, "valid": sorted(columns)[:20]},
            )
    _check_kinds(spec, columns)
    _check_metrics(spec, columns)
    outer = spec.protocol.outer
    if isinstance(outer, KFoldSplit) and n_rows < outer.k:
        raise InvalidInput(f"the dataset has {_rows(n_rows)}, fewer than the {outer.k} folds")
    if isinstance(outer, PredefinedIndicesSplit):
        check_fold_indices(outer.folds, n_rows)


def _referenced_columns(spec: TaskSpec) -> list[tuple[str, str]]:
    out = [("target", name) for name in spec.target_columns]
    if spec.recommendation is not None:
        out += [
            ("user", spec.recommendation.user_column),
            ("item", spec.recommendation.item_column),
        ]
    if spec.sequence is not None:
        out += [("series", spec.sequence.series_column), ("time", spec.sequence.time_column)]
    outer = spec.protocol.outer
    if isinstance(outer, TimeSplit):
        out.append(("time", outer.time_column))
    elif isinstance(outer, GroupSplit):
        out.append(("group", outer.group_column))
    elif isinstance(outer, PredefinedColumnSplit):
        out.append(("fold", outer.column))
    if spec.protocol.stratify_column is not None:
        out.append(("stratify", spec.protocol.stratify_column))
    return out


def _column_hint(name: str, columns: Iterable[str]) -> str:
    names = list(columns)
    close = difflib.get_close_matches(name, names, n=3)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    if not names:
        return "the dataset has no columns"
    shown = ", ".join(repr(c) for c in names[:5])
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return f"valid columns include {shown}{more}"


_TARGET_KINDS: dict[str, tuple[str, ...]] = {
    "binary": ("categorical", "boolean", "numeric"),
    "multiclass": ("categorical", "boolean", "numeric"),
    "anomaly": ("boolean", "numeric", "categorical"),
    "regression": ("numeric",),
    "multitarget": ("numeric", "categorical", "boolean"),
    "recommendation": ("numeric",),
    "sequence": ("numeric", "categorical", "boolean"),
}


def _check_kinds(spec: TaskSpec, columns: Mapping[str, str]) -> None:
    allowed = _TARGET_KINDS[spec.type]
    for name in spec.target_columns:
        kind = columns[name]
        if kind not in allowed:
            what = "rating" if spec.type == "recommendation" else f"{spec.type} target"
            raise InvalidInput(
                f"{what} {name!r} must be {_or(allowed)}, but it is {kind}",
                details={"column": name, "kind": kind, "allowed": list(allowed)},
            )
    time_column = spec.time_column
    for name in dict.fromkeys(n for n in (time_column, _seq_time(spec)) if n is not None):
        kind = columns[name]
        if kind not in ("datetime", "numeric"):
            raise InvalidInput(
                f"time column {name!r} must be datetime or numeric, but it is {kind}",
                details={"column": name, "kind": kind, "allowed": ["datetime", "numeric"]},
            )


def _seq_time(spec: TaskSpec) -> str | None:
    return spec.sequence.time_column if spec.sequence is not None else None


def _check_metrics(spec: TaskSpec, columns: Mapping[str, str]) -> None:
    valid = metrics_for(spec.type)
    for name in spec.metrics:
        if spec.metrics.count(name) > 1:
            raise InvalidInput(f"metric {name!r} is listed twice", details={"metric": name})
        metric = get_metric(name)
        if spec.type not in metric.task_types:
            raise InvalidInput(
                f"metric {name!r} does not apply to {spec.type} tasks; valid: {', '.join(valid)}",
                details={"metric": name, "valid": valid},
            )
        if metric.base_name in NUMERIC_METRICS:
            for target in spec.target_columns:
                if columns[target] != "numeric":
                    raise InvalidInput(
                        f"metric {name!r} needs numeric targets, but {target!r} is "
                        f"{columns[target]}",
                        details={"metric": name, "column": target},
                    )


def check_fold_indices(folds: Sequence[Sequence[int]], n_rows: int) -> None:
    """Check explicit test indices: in range, no fold empty, no row listed twice.

    Raises :class:`InvalidInput` naming the fold and the row.
    """
    arrays = [np.asarray(fold, dtype=np.int64).reshape(-1) for fold in folds]
    for f, fold in enumerate(arrays):
        if fold.size == 0:
            raise InvalidInput(f"fold {f} of the index file is empty", details={"fold": f})
        bad = fold[(fold < 0) | (fold >= n_rows)]
        if bad.size:
            row = int(bad[0])
            raise InvalidInput(
                f"fold {f} references row {row}, but the dataset has {_rows(n_rows)} "
                f"(valid: 0..{n_rows - 1})",
                details={"fold": f, "row": row, "n_rows": n_rows},
            )
    rows = np.concatenate(arrays)
    fold_of = np.repeat(np.arange(len(arrays)), [fold.size for fold in arrays])
    order = np.lexsort((fold_of, rows))
    rows, fold_of = rows[order], fold_of[order]
    dup = np.flatnonzero(rows[1:] == rows[:-1])
    if dup.size:
        i = int(dup[0])
        row, a, b = int(rows[i]), int(fold_of[i]), int(fold_of[i + 1])
        message = (
            f"row {row} appears twice in fold {a}"
            if a == b
            else f"row {row} is in both fold {a} and fold {b}"
        )
        raise InvalidInput(message, details={"row": row, "folds": sorted({a, b})})


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _or(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + f" or {words[-1]}"
