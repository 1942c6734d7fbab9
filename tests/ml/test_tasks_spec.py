"""Task definitions: parsing, combination rules and validation against a dataset's columns."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from openmaas.errors import InvalidInput
from openmaas.ml.tasks import (
    GroupSplit,
    HoldoutSplit,
    KFoldSplit,
    PredefinedColumnSplit,
    PredefinedIndicesSplit,
    TaskSpec,
    TimeSplit,
    check_fold_indices,
    split_columns,
    validate_task,
)

COLUMNS = {
    "label": "categorical",
    "price": "numeric",
    "city": "categorical",
    "when": "datetime",
    "note": "text",
    "flag": "boolean",
    "fold": "numeric",
}


def spec(**kw: Any) -> TaskSpec:
    return TaskSpec.model_validate(kw)


def outer(**kw: Any) -> dict[str, Any]:
    return {"outer": kw}


def invalid(message: str) -> Any:
    """pytest.raises for a ValidationError carrying exactly ``message``."""
    return pytest.raises(ValidationError, match=re.escape(message))


def seq(**kw: Any) -> dict[str, Any]:
    return {"series_column": "city", "time_column": "when", "context_length": 8, "horizon": 2} | kw


# -- parsing and defaults ---------------------------------------------------------------


def test_defaults_fill_metrics_and_a_holdout() -> None:
    task = spec(type="binary", target_columns=["label"])
    assert task.metrics == ["roc_auc", "log_loss", "accuracy"]
    assert task.protocol.outer == HoldoutSplit(test_fraction=0.2)
    assert (task.protocol.inner_folds, task.protocol.seed, task.protocol.stratify) == (5, 0, True)
    assert task.stratify_by == "label"
    assert not task.time_ordered


@pytest.mark.parametrize(
    ("raw", "cls"),
    [
        ({"method": "holdout", "test_fraction": 0.3}, HoldoutSplit),
        ({"method": "kfold", "k": 3}, KFoldSplit),
        ({"method": "time", "time_column": "when"}, TimeSplit),
        ({"method": "group", "group_column": "city"}, GroupSplit),
        ({"method": "predefined_column", "column": "fold"}, PredefinedColumnSplit),
        ({"method": "predefined_indices", "folds": [[0, 1], [2]]}, PredefinedIndicesSplit),
    ],
)
def test_outer_split_is_chosen_by_method(raw: dict[str, Any], cls: type) -> None:
    task = spec(type="regression", target_columns=["price"], protocol=outer(**raw))
    assert isinstance(task.protocol.outer, cls)
    assert TaskSpec.model_validate_json(task.model_dump_json()) == task


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"method": "holdout", "test_fraction": 1.0}, "Input should be less than 1"),
        ({"method": "holdout", "test_fraction": 0}, "Input should be greater than 0"),
        ({"method": "kfold", "k": 1}, "Input should be greater than or equal to 2"),
        ({"method": "kfold", "k": 101}, "Input should be less than or equal to 100"),
        ({"method": "kfold", "shuffle": True}, "Extra inputs are not permitted"),
        ({"method": "bootstrap"}, "does not match any of the expected tags"),
        ({"method": "time"}, "outer.time.time_column\n  Field required"),
        ({"method": "predefined_indices", "folds": []}, "List should have at least 1 item"),
        (
            {"method": "group", "group_column": "city", "k": 3, "test_fraction": 0.2},
            "a group split takes either k or test_fraction, not both",
        ),
    ],
)
def test_bad_outer_splits_are_refused(raw: dict[str, Any], message: str) -> None:
    with invalid(message):
        spec(type="regression", target_columns=["price"], protocol=outer(**raw))


def test_group_split_defaults_to_five_folds() -> None:
    split = GroupSplit(group_column="city")
    assert (split.k, split.test_fraction) == (5, None)
    assert GroupSplit(group_column="city", test_fraction=0.25).k is None


def test_unknown_fields_are_refused() -> None:
    with invalid("Extra inputs are not permitted"):
        spec(type="binary", target_columns=["label"], shuffle=True)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            {"type": "sequence", "target_columns": ["price"]},
            "sequence tasks need series_column and time_column (in 'sequence')",
        ),
        (
            {"type": "recommendation"},
            "recommendation tasks need user_column and item_column (in 'recommendation')",
        ),
        (
            {"type": "binary", "target_columns": ["label"], "sequence": seq()},
            "'sequence' is only for sequence tasks, not binary",
        ),
        (
            {
                "type": "binary",
                "target_columns": ["label"],
                "recommendation": {"user_column": "a", "item_column": "b", "implicit": True},
            },
            "'recommendation' is only for recommendation tasks, not binary",
        ),
        (
            {"type": "binary", "target_columns": []},
            "binary tasks need exactly one target column, got 0",
        ),
        (
            {"type": "regression", "target_columns": ["a", "b"]},
            "regression tasks need exactly one target column, got 2",
        ),
        (
            {"type": "multitarget", "target_columns": ["a"]},
            "multitarget tasks need at least two target columns, got 1",
        ),
        (
            {"type": "multitarget", "target_columns": ["a", "a"]},
            "target column 'a' is listed twice",
        ),
        (
            {"type": "recommendation", "recommendation": {"user_column": "u", "item_column": "i"}},
            "explicit recommendation needs a rating_column (or set implicit)",
        ),
        (
            {
                "type": "recommendation",
                "recommendation": {"user_column": "u", "item_column": "u", "implicit": True},
            },
            "user_column and item_column must differ",
        ),
        (
            {
                "type": "recommendation",
                "target_columns": ["x"],
                "recommendation": {"user_column": "u", "item_column": "i", "rating_column": "r"},
            },
            "recommendation target_columns must be ['r'] (the rating_column), got ['x']",
        ),
        (
            {"type": "sequence", "target_columns": ["city"], "sequence": seq()},
            "the target 'city' cannot also be the series_column",
        ),
        (
            {
                "type": "sequence",
                "target_columns": ["price"],
                "sequence": seq(),
                "protocol": outer(method="kfold"),
            },
            "sequence tasks need a time or predefined outer split, not 'kfold' "
            "(random rows would leak the future into training)",
        ),
        (
            {
                "type": "sequence",
                "target_columns": ["price"],
                "sequence": seq(),
                "protocol": outer(method="time", time_column="other"),
            },
            "the time split of a sequence task must use its time_column 'when', not 'other'",
        ),
        (
            {
                "type": "binary",
                "target_columns": ["label"],
                "protocol": {"stratify": False, "stratify_column": "city"},
            },
            "stratify_column is set but stratify is false",
        ),
        (
            {
                "type": "sequence",
                "target_columns": ["price"],
                "sequence": seq(horizon=0),
                "protocol": outer(method="time", time_column="when"),
            },
            "Input should be greater than or equal to 1",
        ),
    ],
)
def test_bad_combinations_are_refused(kw: dict[str, Any], message: str) -> None:
    with invalid(message):
        spec(**kw)


def test_recommendation_target_is_the_rating_column() -> None:
    rec = {"user_column": "u", "item_column": "i", "rating_column": "r"}
    assert spec(type="recommendation", recommendation=rec).target_columns == ["r"]
    implicit = {"user_column": "u", "item_column": "i", "implicit": True}
    task = spec(type="recommendation", recommendation=implicit)
    assert task.target_columns == []
    assert task.metrics == ["ndcg@10", "recall@10", "mrr@10", "hit_rate@10"]
    assert task.stratify_by is None


def test_time_ordering_and_stratification_follow_the_protocol() -> None:
    timed = spec(
        type="binary", target_columns=["label"], protocol=outer(method="time", time_column="when")
    )
    assert timed.time_ordered and timed.time_column == "when" and timed.stratify_by is None
    sequence = spec(
        type="sequence",
        target_columns=["price"],
        sequence=seq(),
        protocol=outer(method="predefined_column", column="fold"),
    )
    assert sequence.time_ordered and sequence.time_column == "when"
    by_city = spec(
        type="regression", target_columns=["price"], protocol={"stratify_column": "city"}
    )
    assert by_city.stratify_by == "city"
    assert spec(type="regression", target_columns=["price"]).stratify_by is None
    off = spec(type="multiclass", target_columns=["label"], protocol={"stratify": False})
    assert off.stratify_by is None


def test_split_columns_lists_what_splitting_reads() -> None:
    task = spec(
        type="binary",
        target_columns=["label"],
        protocol={"outer": {"method": "group", "group_column": "city"}, "stratify_column": "flag"},
    )
    assert split_columns(task) == ["label", "city", "flag"]
    timed = spec(
        type="sequence",
        target_columns=["price"],
        sequence=seq(),
        protocol=outer(method="time", time_column="when"),
    )
    assert split_columns(timed) == ["price", "when"]
    fold = spec(
        type="binary",
        target_columns=["label"],
        protocol=outer(method="predefined_column", column="fold"),
    )
    assert split_columns(fold) == ["label", "fold"]


# -- validate_task ----------------------------------------------------------------------


def check(task: TaskSpec, message: str, n_rows: int = 100) -> InvalidInput:
    with pytest.raises(InvalidInput, match=f"^{re.escape(message)}$") as info:
        validate_task(task, COLUMNS, n_rows)
    return info.value


def test_a_valid_task_passes() -> None:
    validate_task(spec(type="binary", target_columns=["label"]), COLUMNS, 100)
    validate_task(
        spec(
            type="sequence",
            target_columns=["price"],
            sequence=seq(),
            protocol=outer(method="time", time_column="when"),
        ),
        COLUMNS,
        100,
    )


def test_unknown_columns_are_named_with_a_suggestion() -> None:
    error = check(
        spec(type="binary", target_columns=["lable"]),
        "unknown target column 'lable'; did you mean 'label'?",
    )
    assert error.details["role"] == "target"
    assert error.details["valid"] == sorted(COLUMNS)
    check(
        spec(
            type="binary",
            target_columns=["label"],
            protocol=outer(method="group", group_column="zzz"),
        ),
        "unknown group column 'zzz'; valid columns include 'label', 'price', 'city', 'when', "
        "'note' and 2 more",
    )
    rec = {"user_column": "user", "item_column": "city", "implicit": True}
    check(
        spec(type="recommendation", recommendation=rec),
        "unknown user column 'user'; valid columns include 'label', 'price', 'city', 'when', "
        "'note' and 2 more",
    )
    check(
        spec(type="regression", target_columns=["price"], protocol={"stratify_column": "citty"}),
        "unknown stratify column 'citty'; did you mean 'city'?",
    )
    check(
        spec(
            type="binary",
            target_columns=["label"],
            protocol=outer(method="predefined_column", column="folds"),
        ),
        "unknown fold column 'folds'; did you mean 'fold'?",
    )
    with pytest.raises(
        InvalidInput, match=r"^unknown target column 'label'; the dataset has no columns$"
    ):
        validate_task(spec(type="binary", target_columns=["label"]), {}, 10)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            {"type": "regression", "target_columns": ["label"]},
            "regression target 'label' must be numeric, but it is categorical",
        ),
        (
            {"type": "binary", "target_columns": ["note"]},
            "binary target 'note' must be categorical, boolean or numeric, but it is text",
        ),
        (
            {"type": "multitarget", "target_columns": ["price", "when"]},
            "multitarget target 'when' must be numeric, categorical or boolean, but it is datetime",
        ),
        (
            {
                "type": "recommendation",
                "recommendation": {
                    "user_column": "city",
                    "item_column": "label",
                    "rating_column": "note",
                },
            },
            "rating 'note' must be numeric, but it is text",
        ),
        (
            {
                "type": "binary",
                "target_columns": ["label"],
                "protocol": outer(method="time", time_column="note"),
            },
            "time column 'note' must be datetime or numeric, but it is text",
        ),
    ],
)
def test_columns_of_the_wrong_kind_are_refused(kw: dict[str, Any], message: str) -> None:
    check(spec(**kw), message)


def test_metrics_must_exist_and_fit_the_task() -> None:
    error = check(
        spec(type="binary", target_columns=["label"], metrics=["rmse"]),
        "metric 'rmse' does not apply to binary tasks; valid: roc_auc, log_loss, accuracy, f1, "
        "balanced_accuracy, average_precision",
    )
    assert error.details == {
        "metric": "rmse",
        "valid": [
            "roc_auc",
            "log_loss",
            "accuracy",
            "f1",
            "balanced_accuracy",
            "average_precision",
        ],
    }
    with pytest.raises(InvalidInput, match=r"^unknown metric 'auc'; valid: roc_auc, log_loss, "):
        validate_task(spec(type="binary", target_columns=["label"], metrics=["auc"]), COLUMNS, 10)
    check(
        spec(type="binary", target_columns=["label"], metrics=["f1", "f1"]),
        "metric 'f1' is listed twice",
    )
    check(
        spec(type="multitarget", target_columns=["price", "label"]),
        "metric 'rmse' needs numeric targets, but 'label' is categorical",
    )
    validate_task(
        spec(type="multitarget", target_columns=["flag", "label"], metrics=["accuracy"]),
        COLUMNS,
        10,
    )
    rec = {"user_column": "city", "item_column": "label", "implicit": True}
    validate_task(
        spec(type="recommendation", recommendation=rec, metrics=["precision@5"]), COLUMNS, 10
    )


def test_row_counts_and_fold_indices_are_checked() -> None:
    check(
        spec(type="binary", target_columns=["label"], protocol=outer(method="kfold", k=5)),
        "the dataset has 3 rows, fewer than the 5 folds",
        n_rows=3,
    )
    indices = outer(method="predefined_indices", folds=[[0, 1], [2, 10]])
    check(
        spec(type="binary", target_columns=["label"], protocol=indices),
        "fold 1 references row 10, but the dataset has 10 rows (valid: 0..9)",
        n_rows=10,
    )


@pytest.mark.parametrize(
    ("folds", "message"),
    [
        ([[0, 1], []], "fold 1 of the index file is empty"),
        ([[0, -1]], "fold 0 references row -1, but the dataset has 5 rows (valid: 0..4)"),
        ([[0, 5]], "fold 0 references row 5, but the dataset has 5 rows (valid: 0..4)"),
        ([[3, 1, 3]], "row 3 appears twice in fold 0"),
        ([[0, 4], [1], [2, 4]], "row 4 is in both fold 0 and fold 2"),
    ],
)
def test_fold_index_errors(folds: list[list[int]], message: str) -> None:
    with pytest.raises(InvalidInput, match=f"^{re.escape(message)}$"):
        check_fold_indices(folds, 5)


def test_valid_fold_indices_pass() -> None:
    check_fold_indices([[0, 2], [1, 3]], 5)
