"""Split computation: every method, every refusal, Parquet round trips and rebasing."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from openmaas.errors import InvalidFile, InvalidInput
from openmaas.ml.splits import Splits, compute_splits, rebase_splits
from openmaas.ml.tasks import TaskSpec


def make_spec(type: str = "binary", target: str | None = "y", **protocol: Any) -> TaskSpec:
    extra: dict[str, Any] = {}
    if type == "sequence":
        extra["sequence"] = {
            "series_column": "s",
            "time_column": "t",
            "context_length": 4,
            "horizon": 1,
        }
    targets = [] if target is None else [target]
    return TaskSpec.model_validate(
        {"type": type, "target_columns": targets, "protocol": protocol, **extra}
    )


def frame(n: int = 100, minority: int | None = None, seed: int = 0) -> pd.DataFrame:
    """``n`` rows: class 'b' on ``minority`` (30 %) rows, 20 groups, daily times, a value."""
    rng = np.random.default_rng(seed)
    minority = n * 3 // 10 if minority is None else minority
    y = np.array(["a"] * (n - minority) + ["b"] * minority)
    return pd.DataFrame(
        {
            "y": rng.permutation(y),
            "g": rng.integers(0, 20, n),
            "t": pd.date_range("2021-01-01", periods=n, freq="D")[rng.permutation(n)],
            "v": rng.normal(size=n),
            "s": rng.integers(0, 4, n),
        }
    )


def assert_consistent(splits: Splits, n: int) -> None:
    """Parts are disjoint, cover what they should, and inner folds live in training parts."""
    assert splits.n_rows == n and splits.outer.dtype == np.int16
    for f in range(splits.n_outer):
        train, test = splits.train_test(f)
        assert np.intersect1d(train, test).size == 0
        if not splits.time_ordered:
            assert np.union1d(train, test).size == n
        for i in range(splits.n_inner):
            inner_train, valid = splits.inner_train_valid(f, i)
            assert np.intersect1d(inner_train, valid).size == 0
            assert set(inner_train) | set(valid) <= set(train)
            assert valid.size >= 1 and inner_train.size >= 2


def refuse(message: str) -> Any:
    return pytest.raises(InvalidInput, match=f"^{re.escape(message)}$")


# -- holdout and k-fold -----------------------------------------------------------------


def test_stratified_holdout_keeps_class_shares() -> None:
    data = frame()
    splits = compute_splits(make_spec(outer={"method": "holdout", "test_fraction": 0.2}), data)
    assert_consistent(splits, 100)
    assert splits.n_outer == 1 and not splits.time_ordered
    assert set(np.unique(splits.outer)) == {-1, 0}
    train, test = splits.train_test(0)
    assert (train.size, test.size) == (80, 20)
    assert (data.y.iloc[test] == "b").sum() == 6
    for i in range(5):
        _, valid = splits.inner_train_valid(0, i)
        assert valid.size == 16
        assert (data.y.iloc[valid] == "b").sum() in (4, 5)
    assert np.array_equal(np.sort(np.unique(splits.inner[0])), [-1, 0, 1, 2, 3, 4])


def test_unstratified_holdout_of_a_regression() -> None:
    splits = compute_splits(
        make_spec("regression", "v", outer={"method": "holdout", "test_fraction": 0.25}), frame(10)
    )
    assert_consistent(splits, 10)
    assert splits.train_test(0)[1].size == math.ceil(0.25 * 10)


def test_stratified_kfold_puts_every_row_in_one_test_fold() -> None:
    data = frame()
    splits = compute_splits(make_spec(outer={"method": "kfold", "k": 5}, inner_folds=3), data)
    assert_consistent(splits, 100)
    assert splits.n_outer == 5 and splits.n_inner == 3
    assert np.array_equal(np.bincount(splits.outer), [20] * 5)
    for f in range(5):
        _, test = splits.train_test(f)
        assert (data.y.iloc[test] == "b").sum() == 6
        assert np.count_nonzero(splits.inner[f] == -1) == 20


def test_splits_are_deterministic_given_the_seed() -> None:
    data = frame()
    first = compute_splits(make_spec(outer={"method": "kfold", "k": 4}, seed=3), data)
    again = compute_splits(make_spec(outer={"method": "kfold", "k": 4}, seed=3), data)
    other = compute_splits(make_spec(outer={"method": "kfold", "k": 4}, seed=4), data)
    assert np.array_equal(first.outer, again.outer)
    assert all(np.array_equal(a, b) for a, b in zip(first.inner, again.inner, strict=True))
    assert not np.array_equal(first.outer, other.outer)


def test_stratify_column_is_used_for_any_type() -> None:
    data = frame()
    data["u"] = np.repeat(np.arange(10), 10)
    spec = make_spec("regression", "v", outer={"method": "kfold", "k": 5}, stratify_column="u")
    splits = compute_splits(spec, data)
    for f in range(5):
        _, test = splits.train_test(f)
        assert np.array_equal(np.bincount(data.u.iloc[test], minlength=10), [2] * 10)


# -- groups -----------------------------------------------------------------------------


def _groups_of(data: pd.DataFrame, rows: Any) -> set[int]:
    return set(data.g.iloc[rows])


@pytest.mark.parametrize("stratify", [True, False])
def test_group_kfold_never_splits_a_group(stratify: bool) -> None:
    data = frame(200, 60)
    spec = make_spec(outer={"method": "group", "group_column": "g", "k": 4}, stratify=stratify)
    splits = compute_splits(spec, data)
    assert_consistent(splits, 200)
    for f in range(4):
        train, test = splits.train_test(f)
        assert not _groups_of(data, train) & _groups_of(data, test)
        for i in range(5):
            inner_train, valid = splits.inner_train_valid(f, i)
            assert not _groups_of(data, inner_train) & _groups_of(data, valid)


def test_group_holdout_counts_groups() -> None:
    data = frame(200, 60)
    spec = make_spec(outer={"method": "group", "group_column": "g", "test_fraction": 0.25})
    splits = compute_splits(spec, data)
    assert_consistent(splits, 200)
    train, test = splits.train_test(0)
    assert len(_groups_of(data, test)) == 5
    assert not _groups_of(data, train) & _groups_of(data, test)


# -- time -------------------------------------------------------------------------------


def test_time_split_tests_on_the_latest_rows() -> None:
    data = frame()
    splits = compute_splits(make_spec(outer={"method": "time", "time_column": "t"}), data)
    assert_consistent(splits, 100)
    assert splits.time_ordered
    train, test = splits.train_test(0)
    assert test.size == 20
    assert data.t.iloc[train].max() < data.t.iloc[test].min()
    # inner folds: 6 time blocks, the first never validates, each fold trains on the past
    assert np.count_nonzero(splits.inner[0] == -2) == 14
    for i in range(5):
        inner_train, valid = splits.inner_train_valid(0, i)
        assert data.t.iloc[inner_train].max() < data.t.iloc[valid].min()
        assert inner_train.size == 14 + sum(
            np.count_nonzero(splits.inner[0] == j) for j in range(i)
        )


def test_equal_times_stay_on_one_side() -> None:
    data = pd.DataFrame({"y": ["a", "b"] * 10, "t": [0] * 4 + [1] * 4 + [2] * 4 + [3] * 8})
    splits = compute_splits(
        make_spec(
            outer={"method": "time", "time_column": "t", "test_fraction": 0.5}, inner_folds=2
        ),
        data,
    )
    train, test = splits.train_test(0)
    assert set(data.t.iloc[test]) == {3} and test.size == 8  # the run of 2s straddled: trains
    assert set(data.t.iloc[train]) == {0, 1, 2}
    assert [set(data.t.iloc[splits.inner_train_valid(0, i)[1]]) for i in range(2)] == [{1}, {2}]


def test_sequence_task_with_predefined_folds_is_a_rolling_origin() -> None:
    data = pd.DataFrame(
        {
            "y": np.arange(40.0),
            "s": np.tile([0, 1], 20),
            "t": np.repeat(np.arange(20), 2),
            "fold": [-1] * 20 + [0] * 10 + [1] * 10,
        }
    )
    spec = make_spec(
        "sequence",
        "y",
        outer={"method": "predefined_column", "column": "fold"},
        inner_folds=2,
    )
    splits = compute_splits(spec, data)
    assert_consistent(splits, 40)
    assert splits.time_ordered and splits.n_outer == 2
    assert np.array_equal(splits.train_test(0)[0], np.arange(20))
    assert np.array_equal(splits.train_test(1)[0], np.arange(30))
    assert np.array_equal(splits.train_test(1)[1], np.arange(30, 40))
    assert np.all(splits.inner[0][20:] == -1)


# -- predefined -------------------------------------------------------------------------


def test_predefined_train_test_column() -> None:
    data = frame(10)
    data["split"] = ["train"] * 7 + ["test"] * 3
    spec = make_spec(
        "regression", "v", outer={"method": "predefined_column", "column": "split"}, inner_folds=2
    )
    splits = compute_splits(spec, data)
    assert np.array_equal(splits.outer, [-1] * 7 + [0] * 3)
    assert np.array_equal(splits.train_test(0)[1], [7, 8, 9])


def test_predefined_integer_column() -> None:
    data = frame(12)
    data["fold"] = [0, 1, 2, -1] * 3
    spec = make_spec(
        "regression", "v", outer={"method": "predefined_column", "column": "fold"}, inner_folds=2
    )
    splits = compute_splits(spec, data)
    assert splits.n_outer == 3
    assert np.array_equal(splits.outer, data.fold.to_numpy())
    assert np.array_equal(splits.train_test(1)[0], [0, 2, 3, 4, 6, 7, 8, 10, 11])


def test_predefined_indices() -> None:
    folds = [[0, 1, 2], [5, 6], [9]]
    spec = make_spec(
        "regression", "v", outer={"method": "predefined_indices", "folds": folds}, inner_folds=2
    )
    splits = compute_splits(spec, frame(10))
    assert np.array_equal(splits.outer, [0, 0, 0, -1, -1, 1, 1, -1, -1, 2])
    assert np.array_equal(splits.train_test(2)[1], [9])


HINT = "use 'train'/'test' or integer folds 0..k-1 (-1 = train only)"


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (
            ["train", "dev", "test", "val"] * 3,
            f"predefined column 'fold' has unknown fold labels 'dev', 'val'; {HINT}",
        ),
        (
            [0, 1, 0.5, -2] * 3,
            f"predefined column 'fold' has unknown fold labels -2.0, 0.5; {HINT}",
        ),
        (
            [True, False] * 6,
            f"predefined column 'fold' has unknown fold labels False, True; {HINT}",
        ),
        (
            [0, 2, -1] * 4,
            f"predefined column 'fold' has no rows in fold 1; {HINT}",
        ),
        (["train"] * 12, "predefined column 'fold' has no test rows"),
        ([-1] * 12, "predefined column 'fold' has no test rows"),
        (list(range(101)) * 2, "predefined column 'fold' names 101 folds; at most 100 are allowed"),
    ],
)
def test_predefined_column_errors(labels: list[Any], message: str) -> None:
    data = pd.DataFrame({"v": np.arange(len(labels), dtype=float), "fold": labels})
    spec = make_spec("regression", "v", outer={"method": "predefined_column", "column": "fold"})
    with refuse(message):
        compute_splits(spec, data)


def test_predefined_indices_errors_name_the_row() -> None:
    spec = make_spec(
        "regression", "v", outer={"method": "predefined_indices", "folds": [[1, 2], [2]]}
    )
    with refuse("row 2 is in both fold 0 and fold 1"):
        compute_splits(spec, frame(10))
    spec = make_spec("regression", "v", outer={"method": "predefined_indices", "folds": [[10]]})
    with refuse("fold 0 references row 10, but the dataset has 10 rows (valid: 0..9)"):
        compute_splits(spec, frame(10))


# -- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "labels", "message"),
    [
        (
            "binary",
            ["a", "b", "c"] * 10,
            "binary target 'y' has 3 classes ('a', 'b', 'c'); expected exactly 2",
        ),
        ("binary", ["a"] * 30, "binary target 'y' has 1 class ('a'); expected exactly 2"),
        (
            "binary",
            list(range(7)) * 5,
            "binary target 'y' has 7 classes (0, 1, 2, 3, 4, ...); expected exactly 2",
        ),
        (
            "multiclass",
            ["z"] * 30,
            "multiclass target 'y' has a single class ('z'); at least 2 are needed",
        ),
    ],
)
def test_class_count_errors(kind: str, labels: list[Any], message: str) -> None:
    with refuse(message):
        compute_splits(make_spec(kind), pd.DataFrame({"y": labels}))


def test_rare_class_for_stratified_folds() -> None:
    data = pd.DataFrame({"y": ["a"] * 50 + ["x"] * 3})
    with refuse("class 'x' has 3 rows, fewer than the 5 folds"):
        compute_splits(make_spec(outer={"method": "kfold", "k": 5}), data)
    with refuse(
        "class 'x' has 3 rows in the training part of outer fold 0, fewer than the 5 inner folds"
    ):
        compute_splits(
            make_spec(outer={"method": "holdout"}), pd.DataFrame({"y": ["a"] * 50 + ["x"] * 4})
        )
    with refuse("class 'x' has 1 row, fewer than the 2 parts of a holdout split"):
        compute_splits(
            make_spec(outer={"method": "holdout"}), pd.DataFrame({"y": ["a"] * 50 + ["x"]})
        )
    data = pd.DataFrame({"v": np.arange(40.0), "u": ["p"] * 38 + ["q"] * 2})
    spec = make_spec("regression", "v", outer={"method": "kfold", "k": 3}, stratify_column="u")
    with refuse("value 'q' of stratify column 'u' has 2 rows, fewer than the 3 folds"):
        compute_splits(spec, data)


def test_stratified_holdout_needs_room_for_every_class() -> None:
    data = pd.DataFrame({"y": list("aabbccdd") + ["e"] * 2})
    spec = make_spec("multiclass", outer={"method": "holdout", "test_fraction": 0.2})
    with refuse(
        "a stratified holdout of 10 rows at test_fraction 0.2 has 2 test rows, "
        "fewer than the 5 classes"
    ):
        compute_splits(spec, data)


@pytest.mark.parametrize(
    ("spec_kw", "n", "message"),
    [
        (
            {"outer": {"method": "kfold", "k": 5}},
            4,
            "the dataset has 4 rows, fewer than the 5 folds",
        ),
        (
            {"outer": {"method": "holdout", "test_fraction": 0.5}, "inner_folds": 5},
            8,
            "the training part of outer fold 0 has 4 rows, fewer than the 5 inner folds",
        ),
        (
            {"outer": {"method": "holdout", "test_fraction": 0.5}},
            1,
            "the dataset has 1 row, too few for a holdout with test_fraction 0.5",
        ),
        (
            {"outer": {"method": "kfold", "k": 2}, "inner_folds": 2},
            5,
            "inner fold 0 of outer fold 0 has 1 row to train on; at least 2 are needed",
        ),
        (
            {"outer": {"method": "time", "time_column": "t"}, "inner_folds": 5},
            6,
            "the training part of outer fold 0 has 4 rows, "
            "too few for 5 time-ordered inner folds (6 blocks)",
        ),
    ],
)
def test_too_few_rows(spec_kw: dict[str, Any], n: int, message: str) -> None:
    data = pd.DataFrame({"v": np.arange(float(n)), "t": np.arange(n)})
    with refuse(message):
        compute_splits(make_spec("regression", "v", **spec_kw), data)


def test_time_ties_can_leave_a_fold_empty() -> None:
    data = pd.DataFrame({"v": np.arange(20.0), "t": [0] * 18 + [1, 2]})
    spec = make_spec(
        "regression",
        "v",
        outer={"method": "time", "time_column": "t", "test_fraction": 0.1},
        inner_folds=2,
    )
    with refuse("inner fold 0 of outer fold 0 has no validation rows"):
        compute_splits(spec, data)
    all_tied = pd.DataFrame({"v": np.arange(20.0), "t": [0] * 20})
    with refuse("outer fold 0 has no test rows"):
        compute_splits(spec, all_tied)


def test_too_few_groups() -> None:
    data = pd.DataFrame({"v": np.arange(30.0), "g": [1, 2, 3] * 10})
    with refuse("the dataset has 3 groups in column 'g', fewer than the 5 folds"):
        compute_splits(
            make_spec("regression", "v", outer={"method": "group", "group_column": "g"}), data
        )
    spec = make_spec(
        "regression", "v", outer={"method": "group", "group_column": "g", "k": 2}, inner_folds=2
    )
    with refuse(
        "the training part of outer fold 0 has 1 groups in column 'g', fewer than the 2 inner folds"
    ):
        compute_splits(spec, data)
    one = pd.DataFrame({"v": np.arange(30.0), "g": [7] * 30})
    holdout = make_spec(
        "regression", "v", outer={"method": "group", "group_column": "g", "test_fraction": 0.2}
    )
    with refuse("the dataset has 1 group in column 'g'; a holdout split needs at least 2"):
        compute_splits(holdout, one)


def test_missing_values_are_refused_naming_the_first_row() -> None:
    data = frame(20)
    data.loc[[4, 9], "y"] = None
    with refuse("target column 'y' has 2 missing values (first at row 4)"):
        compute_splits(make_spec(), data)
    data = frame(20)
    data["g"] = data.g.astype(float)
    data.loc[11, "g"] = np.nan
    with refuse("group column 'g' has 1 missing value (first at row 11)"):
        compute_splits(make_spec(outer={"method": "group", "group_column": "g", "k": 2}), data)
    anomaly = pd.DataFrame({"y": [0, 1, None, 0] * 5})
    with refuse("target column 'y' has 5 missing values (first at row 2)"):
        compute_splits(make_spec("anomaly"), anomaly)


def test_frame_must_hold_the_split_columns() -> None:
    with refuse("the frame lacks the group column 'g'"):
        spec = make_spec(outer={"method": "group", "group_column": "g"})
        compute_splits(spec, pd.DataFrame({"y": ["a", "b"] * 10}))
    with refuse("the dataset has no rows"):
        compute_splits(make_spec("regression", "v"), pd.DataFrame({"v": []}))


def test_implicit_recommendation_splits_without_a_target() -> None:
    data = pd.DataFrame({"user": np.repeat(np.arange(10), 10), "item": np.tile(np.arange(10), 10)})
    spec = TaskSpec.model_validate(
        {
            "type": "recommendation",
            "recommendation": {"user_column": "user", "item_column": "item", "implicit": True},
            "protocol": {"outer": {"method": "holdout"}, "stratify_column": "user"},
        }
    )
    splits = compute_splits(spec, data)
    _, test = splits.train_test(0)
    assert np.array_equal(np.bincount(data.user.iloc[test]), [2] * 10)


# -- the Splits object ------------------------------------------------------------------


def small_splits() -> Splits:
    return compute_splits(
        make_spec(outer={"method": "kfold", "k": 3}, inner_folds=2), frame(30, 12)
    )


def test_fold_numbers_are_checked() -> None:
    splits = small_splits()
    with refuse("outer fold 3 does not exist; valid: 0..2"):
        splits.train_test(3)
    with refuse("inner fold 2 does not exist; valid: 0..1"):
        splits.inner_train_valid(0, 2)


def test_arrays_are_read_only_int16() -> None:
    splits = small_splits()
    assert splits.inner[0].dtype == np.int16
    with pytest.raises(ValueError, match="read-only"):
        splits.outer[0] = 1


@pytest.mark.parametrize(
    ("outer", "inner", "message"),
    [
        ([0, 1], ([-1, 0], [0, -1]), "splits need an outer and 2+ inner folds, got 2, 1"),
        ([0, 5], ([-1, 0],), "outer fold ids must lie in -1..0"),
        ([0, 0], ([-1, -1, -1],), "inner_0 has 3 rows, outer has 2"),
        ([0, -1], ([-1, 7],), "inner_0 fold ids must lie in -1..1"),
        ([0, -1], ([-1, -1],), "inner_0 is -1 exactly outside outer fold 0's training part"),
        ([0.5, 1], ([0, 0],), "outer must be a 1-d integer array, got float64 (2,)"),
        ([0, 300], ([-1, 0],), "outer has fold ids outside -2..100"),
    ],
)
def test_inconsistent_splits_are_refused(outer: Any, inner: Any, message: str) -> None:
    n_inner = 1 if message.startswith("splits need") else 2
    with refuse(message):
        Splits(np.asarray(outer), tuple(np.asarray(a) for a in inner), n_inner)


def assert_same(a: Splits, b: Splits) -> None:
    assert (a.n_outer, a.n_inner, a.time_ordered) == (b.n_outer, b.n_inner, b.time_ordered)
    assert np.array_equal(a.outer, b.outer)
    assert all(np.array_equal(x, y) for x, y in zip(a.inner, b.inner, strict=True))


def test_arrow_table_layout() -> None:
    table = small_splits().to_arrow()
    assert table.column_names == ["row", "outer", "inner_0", "inner_1", "inner_2"]
    assert table.schema.field("outer").type == pa.int16()
    meta = json.loads(table.schema.metadata[b"openmaas.splits"])
    assert meta == {"version": 1, "n_inner": 2, "time_ordered": False}


def test_parquet_round_trips(tmp_path: Path) -> None:
    data = frame()
    splits = compute_splits(make_spec(outer={"method": "time", "time_column": "t"}), data)
    blob = splits.to_parquet_bytes()
    assert_same(Splits.from_parquet(blob), splits)
    assert_same(Splits.from_parquet(io.BytesIO(blob)), splits)
    path = tmp_path / "splits.parquet"
    path.write_bytes(blob)
    assert_same(Splits.from_parquet(path), splits)
    assert_same(Splits.from_parquet(str(path)), splits)
    shuffled = splits.to_arrow().take(np.random.default_rng(0).permutation(100))
    assert_same(Splits.from_arrow(shuffled), splits)


def _with(table: pa.Table, **changes: Any) -> pa.Table:
    for name, values in changes.items():
        table = table.set_column(table.column_names.index(name), name, pa.array(values))
    return table


def test_bad_split_files_are_refused() -> None:
    table = small_splits().to_arrow()
    meta = table.schema.metadata
    cases = [
        (table.replace_schema_metadata({}), "split table lacks valid 'openmaas.splits' metadata"),
        (
            table.replace_schema_metadata({b"openmaas.splits": b"{"}),
            "split table lacks valid 'openmaas.splits' metadata",
        ),
        (
            table.replace_schema_metadata(
                {b"openmaas.splits": b'{"version": 2, "n_inner": 2, "time_ordered": false}'}
            ),
            "split table has format version 2, expected 1",
        ),
        (
            table.drop_columns(["inner_1"]),
            "split table needs columns row, outer and inner_0..inner_{n-1}",
        ),
        (
            table.drop_columns(["row"]),
            "split table needs columns row, outer and inner_0..inner_{n-1}",
        ),
        (_with(table, row=[0] * 30), "split table rows must be 0..29, each once"),
        (
            _with(table, outer=[None] * 30).replace_schema_metadata(meta),
            "split table has missing values",
        ),
        (
            _with(table, outer=[7] * 30).replace_schema_metadata(meta),
            "split table is inconsistent: outer fold ids must lie in -1..2",
        ),
    ]
    for bad, message in cases:
        with pytest.raises(InvalidFile, match=f"^{re.escape(message)}$"):
            Splits.from_arrow(bad)
    with pytest.raises(InvalidFile, match=r"^cannot read the split file: "):
        Splits.from_parquet(b"not parquet")


# -- rebasing ---------------------------------------------------------------------------


def rebased(spec: TaskSpec, data: pd.DataFrame, n_old: int) -> tuple[Splits, Splits]:
    old = compute_splits(spec, data.iloc[:n_old])
    new = rebase_splits(old, spec, data, n_old)
    assert_same(
        Splits(
            new.outer[:n_old], tuple(a[:n_old] for a in new.inner), new.n_inner, new.time_ordered
        ),
        old,
    )
    assert_consistent(new, len(data))
    return old, new


def test_rebase_holdout_keeps_old_rows_and_the_fraction() -> None:
    data = frame(150, 45)
    _, new = rebased(make_spec(outer={"method": "holdout"}), data, 100)
    assert np.count_nonzero(new.outer[100:] == 0) == 10
    assert (data.y.iloc[100:][new.outer[100:] == 0] == "b").sum() == 3


def test_rebase_kfold_spreads_new_rows_over_the_folds() -> None:
    data = frame(150, 45)
    _, new = rebased(make_spec(outer={"method": "kfold", "k": 5}, inner_folds=2), data, 100)
    assert np.array_equal(np.bincount(new.outer[100:]), [10] * 5)


def test_rebase_groups_follow_their_old_folds() -> None:
    data = frame(300, 90)
    data.loc[250:, "g"] = np.arange(20, 70)  # 50 rows of new groups
    spec = make_spec(outer={"method": "group", "group_column": "g", "k": 3}, inner_folds=2)
    _, new = rebased(spec, data, 200)
    for f in range(3):
        train, test = new.train_test(f)
        assert not _groups_of(data, train) & _groups_of(data, test)
        for i in range(2):
            inner_train, valid = new.inner_train_valid(f, i)
            assert not _groups_of(data, inner_train) & _groups_of(data, valid)


def test_rebase_time_split_tests_on_all_appended_rows() -> None:
    data = frame(100).sort_values("t", ignore_index=True)
    spec = make_spec(outer={"method": "time", "time_column": "t"})
    _, new = rebased(spec, data, 90)
    assert np.all(new.outer[90:] == 0)
    assert np.all(new.inner[0][90:] == -1)
    shuffled = frame(100)
    old = compute_splits(spec, shuffled.iloc[:90])
    late = int(np.argmax(shuffled.t.iloc[90:].to_numpy() <= shuffled.t.iloc[:90].max()))
    with refuse(
        f"appended row {90 + late} is not later than the latest training row; "
        "a time split only takes later rows (create a new task to re-split)"
    ):
        rebase_splits(old, spec, shuffled, 90)


def test_rebase_predefined_splits() -> None:
    data = frame(30)
    data["fold"] = [0, 1, -1] * 10
    spec = make_spec(
        "regression", "v", outer={"method": "predefined_column", "column": "fold"}, inner_folds=2
    )
    _, new = rebased(spec, data, 21)
    assert np.array_equal(new.outer[21:], [0, 1, -1] * 3)
    data.loc[29, "fold"] = 2
    old = compute_splits(spec, data.iloc[:21])
    with refuse("the appended rows make 3 outer folds, but the old splits have 2"):
        rebase_splits(old, spec, data, 21)
    indices = make_spec(
        "regression",
        "v",
        outer={"method": "predefined_indices", "folds": [[0, 1, 2]]},
        inner_folds=2,
    )
    _, new = rebased(indices, frame(20), 10)
    assert np.all(new.outer[10:] == -1)


def test_rebase_sequence_rows_join_the_latest_inner_block() -> None:
    data = pd.DataFrame(
        {"y": np.arange(30.0), "s": 0, "t": np.arange(30), "fold": [-1] * 15 + [0] * 5 + [-1] * 10}
    )
    spec = make_spec(
        "sequence", "y", outer={"method": "predefined_column", "column": "fold"}, inner_folds=2
    )
    _, new = rebased(spec, data, 20)
    assert np.all(new.inner[0][20:] == 1)


def test_rebase_refusals() -> None:
    data = frame(120)
    spec = make_spec(outer={"method": "kfold", "k": 5}, inner_folds=2)
    old = compute_splits(spec, data.iloc[:100])
    assert rebase_splits(old, spec, data.iloc[:100], 100) is old
    with refuse("the old splits cover 100 rows, not 90"):
        rebase_splits(old, spec, data, 90)
    with refuse("the new version has 80 rows, fewer than the 100 old ones"):
        rebase_splits(old, spec, data.iloc[:80], 100)
    with refuse("the old splits were not made with this task's protocol"):
        rebase_splits(old, make_spec(outer={"method": "kfold", "k": 5}, inner_folds=3), data, 100)
    with refuse("the old splits were not made with this task's protocol"):
        rebase_splits(old, make_spec(outer={"method": "kfold", "k": 4}, inner_folds=2), data, 100)
    with refuse("the old splits were not made with this task's protocol"):
        rebase_splits(old, make_spec(outer={"method": "holdout"}, inner_folds=2), data, 100)
    with refuse("the appended rows have 3 rows, fewer than the 5 folds"):
        rebase_splits(
            old,
            make_spec("regression", "v", outer={"method": "kfold", "k": 5}, inner_folds=2),
            data.iloc[:103],
            100,
        )
    small = make_spec(outer={"method": "kfold", "k": 2}, inner_folds=2)
    old = compute_splits(small, data.iloc[:100])
    with refuse("class 'b' has 1 row among the appended rows, fewer than the 2 folds"):
        rebase_splits(
            old,
            small,
            pd.concat(
                [data.iloc[:100], data[data.y == "b"].iloc[:1], data[data.y == "a"].iloc[:5]]
            ),
            100,
        )
