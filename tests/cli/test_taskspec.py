"""Task specs built from ``task create`` options, checked against the real TaskSpec model."""

from __future__ import annotations

from typing import Any

import pytest
import typer

from openmaas.cli.taskspec import SpecOptions, build_spec
from openmaas.ml.tasks import TaskSpec


def test_only_given_options_go_in() -> None:
    spec = build_spec(SpecOptions(type="regression", targets=["y"]))
    assert spec == {"type": "regression", "target_columns": ["y"]}
    TaskSpec.model_validate(spec)


@pytest.mark.parametrize(
    ("given", "outer"),
    [
        ({"folds": 4}, {"method": "kfold", "k": 4}),
        ({"test_fraction": 0.3}, {"method": "holdout", "test_fraction": 0.3}),
        ({"time_column": "t"}, {"method": "time", "time_column": "t"}),
        ({"group_column": "g", "folds": 3}, {"method": "group", "group_column": "g", "k": 3}),
        ({"fold_column": "f"}, {"method": "predefined_column", "column": "f"}),
        ({"outer": "kfold"}, {"method": "kfold"}),
    ],
)
def test_outer_method_is_inferred_from_its_options(
    given: dict[str, Any], outer: dict[str, Any]
) -> None:
    spec = build_spec(SpecOptions(type="binary", targets=["y"], **given))
    assert spec["protocol"]["outer"] == outer
    TaskSpec.model_validate(spec)


def test_options_override_a_spec_file() -> None:
    base = {
        "type": "binary",
        "target_columns": ["y"],
        "protocol": {"outer": {"method": "kfold", "k": 5}, "seed": 3},
    }
    spec = build_spec(SpecOptions(folds=10, stratify=False), base)
    assert spec["protocol"] == {"outer": {"method": "kfold", "k": 10}, "seed": 3, "stratify": False}
    assert base["protocol"]["outer"] == {"method": "kfold", "k": 5}  # not modified


def test_sequence_time_column_feeds_config_and_split() -> None:
    options = SpecOptions(
        type="sequence",
        targets=["sales"],
        series_column="store",
        time_column="day",
        context_length=28,
        horizon=7,
        test_fraction=0.1,
    )
    spec = build_spec(options)
    assert spec["sequence"] == {
        "series_column": "store",
        "time_column": "day",
        "context_length": 28,
        "horizon": 7,
    }
    assert spec["protocol"]["outer"] == {
        "method": "time",
        "time_column": "day",
        "test_fraction": 0.1,
    }
    TaskSpec.model_validate(spec)


def test_recommendation_config() -> None:
    options = SpecOptions(
        type="recommendation", user_column="u", item_column="i", rating_column="r"
    )
    spec = build_spec(options)
    assert spec["recommendation"] == {"user_column": "u", "item_column": "i", "rating_column": "r"}
    TaskSpec.model_validate(spec)


def test_option_of_another_split_is_refused() -> None:
    with pytest.raises(typer.BadParameter, match="--folds does not apply to a holdout split"):
        build_spec(SpecOptions(type="binary", outer="holdout", folds=3))


def test_type_is_required() -> None:
    with pytest.raises(typer.BadParameter, match="give --type or a --spec-file with a type"):
        build_spec(SpecOptions(targets=["y"]))
