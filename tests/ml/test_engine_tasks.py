"""The training engine on every other task type, and the demo-task acceptance.

Multitarget, anomaly (labels never reach a fit), recommendation (full ranking,
masking, chunking) and sequence (windows respect the split); then the four
demo tasks with five algorithms each, LightGBM and the DNN among them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine

from openmaas.errors import InvalidInput
from openmaas.ml.data.schema import ColumnSchema
from openmaas.ml.engine import execute_run, read_curves, read_predictions
from openmaas.ml.engine import recommendation as recommendation_module
from openmaas.ml.splits import compute_splits
from openmaas.ml.tasks import TaskSpec

TORCH_FAST = {"batch_size": 64, "learning_rate": 0.01}


def _columns(frame: pd.DataFrame, **kinds: str) -> list[ColumnSchema]:
    return [ColumnSchema(c, kinds.get(c, "numeric"), "double") for c in frame.columns]  # type: ignore[arg-type]


def test_multitarget_predicts_one_column_per_target(tmp_path: Path) -> None:
    frame = load_diabetes(as_frame=True).frame.rename(columns={"target": "y"})
    spec = TaskSpec.model_validate(
        {"type": "multitarget", "target_columns": ["y", "bmi"], "protocol": {"inner_folds": 2}}
    )
    result = execute_run(frame, _columns(frame), spec, compute_splits(spec, frame),
                         "random_forest", {"n_estimators": 5}, 0, tmp_path)  # fmt: skip
    assert "bmi" not in result.features and result.metrics["rmse"]["mean"] is not None
    predictions = read_predictions(tmp_path / "predictions.parquet")
    assert list(predictions.columns[4:]) == ["prediction_y", "prediction_bmi"]


def test_anomaly_labels_only_score(tmp_path: Path) -> None:
    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "y"})
    frame["y"] = 1 - frame["y"]  # malignant = 1 = anomalous
    spec = TaskSpec.model_validate(
        {"type": "anomaly", "target_columns": ["y"], "protocol": {"inner_folds": 2}}
    )
    splits = compute_splits(spec, frame)
    params = {"epochs": 4, "width": 8, **TORCH_FAST}
    result = execute_run(frame, _columns(frame), spec, splits, "vae", params, 0, tmp_path / "a")
    assert result.score is not None and result.score > 0.5  # malignant rows reconstruct worse
    shuffled = frame.assign(y=np.random.default_rng(0).permutation(frame["y"].to_numpy()))
    other = execute_run(shuffled, _columns(shuffled), spec, splits, "vae", params, 0,
                        tmp_path / "b")  # fmt: skip
    scores = [read_predictions(tmp_path / d / "predictions.parquet")["score"] for d in "ab"]
    pd.testing.assert_series_equal(scores[0], scores[1])  # the labels never reached a fit
    assert other.score != result.score


@pytest.fixture(scope="module")
def interactions() -> tuple[pd.DataFrame, list[ColumnSchema], TaskSpec]:
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(30), 8)
    items = (users % 3) * 8 + rng.integers(0, 8, len(users))  # three taste groups
    frame = pd.DataFrame({"user": [f"u{u}" for u in users], "item": items, "clicks": 1.0})
    frame = frame.drop_duplicates(["user", "item"]).reset_index(drop=True)
    columns = [ColumnSchema("user", "categorical", "string"),
               ColumnSchema("item", "numeric", "int64"),
               ColumnSchema("clicks", "numeric", "double")]  # fmt: skip
    spec = TaskSpec.model_validate({
        "type": "recommendation", "metrics": ["ndcg@5", "recall@5", "hit_rate@5", "mrr@5"],
        "recommendation": {"user_column": "user", "item_column": "item",
                           "rating_column": "clicks", "implicit": True},
        "protocol": {"stratify_column": "user", "inner_folds": 2},
    })  # fmt: skip
    return frame, columns, spec


def test_recommendation_ranks_every_item_and_masks_training_interactions(
    interactions: tuple[pd.DataFrame, list[ColumnSchema], TaskSpec],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frame, columns, spec = interactions
    splits = compute_splits(spec, frame)
    params = {"epochs": 40, "patience": 0, "n_factors": 8, "width": 8, "batch_size": 64,
              "learning_rate": 0.02}  # fmt: skip
    result = execute_run(frame, columns, spec, splits, "ncf", params, 0, tmp_path / "whole")
    assert result.score is not None and 0 < result.score <= 1
    assert result.metrics["hit_rate@5"]["mean"] > 0.5  # a user's items are 8 of the 24
    predictions = read_predictions(tmp_path / "whole" / "predictions.parquet")
    assert list(predictions.columns) == [
        "outer_fold", "part", "inner_fold", "user", "rank", "item", "score",
    ]  # fmt: skip
    train, test = splits.train_test(0)
    seen = set(zip(frame["user"][train], frame["item"][train], strict=True))
    tops = predictions[predictions["part"] == "test"]
    assert not seen & set(zip(tops["user"], tops["item"], strict=True))
    assert set(tops["user"]) == set(frame["user"][test])
    assert tops.groupby("user")["rank"].apply(list).map(lambda r: r == [1, 2, 3, 4, 5]).all()

    monkeypatch.setattr(recommendation_module, "CELLS", 50)  # two users per chunk
    chunked = execute_run(frame, columns, spec, splits, "ncf", params, 0, tmp_path / "chunked")
    for name, summary in result.metrics.items():
        assert chunked.metrics[name]["mean"] == pytest.approx(summary["mean"])


@pytest.fixture(scope="module")
def series() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    steps = np.arange(50)
    parts = [
        pd.DataFrame({"s": f"s{k}", "t": steps, "x": (steps % 5).astype(float),
                      "v": np.sin(steps / 4 + k) + 0.05 * rng.normal(size=50)})
        for k in range(3)
    ]  # fmt: skip
    return pd.concat(parts).sample(frac=1.0, random_state=0).reset_index(drop=True)


def _sequence_spec(target: str = "v") -> TaskSpec:
    return TaskSpec.model_validate({
        "type": "sequence", "target_columns": [target],
        "sequence": {"series_column": "s", "time_column": "t", "context_length": 5, "horizon": 2},
        "protocol": {"outer": {"method": "time", "time_column": "t"}, "inner_folds": 2},
    })  # fmt: skip


def test_sequence_windows_respect_series_and_time(series: pd.DataFrame, tmp_path: Path) -> None:
    spec = _sequence_spec()
    splits = compute_splits(spec, series)
    columns = _columns(series, s="categorical")
    result = execute_run(series, columns, spec, splits, "rnn",
                         {"epochs": 5, "hidden_size": 8, **TORCH_FAST}, 0, tmp_path)  # fmt: skip
    assert result.features == ["v", "x"] and result.metrics["rmse"]["mean"] < 1.0
    predictions = read_predictions(tmp_path / "predictions.parquet")
    test = splits.train_test(0)[1]
    tested = predictions[predictions["part"] == "test"]
    assert set(tested["row"]) <= set(test) and set(tested["step"]) == {1, 2}
    assert not tested.duplicated(["row", "step"]).any()
    for i in range(splits.n_inner):
        oof = predictions[(predictions["part"] == "oof") & (predictions["inner_fold"] == i)]
        assert set(oof["row"]) <= set(splits.inner_train_valid(0, i)[1])
    assert len(read_curves(tmp_path)["fold_0/inner_1"]["valid_loss"]) > 0


def test_sequence_refusals(series: pd.DataFrame, tmp_path: Path) -> None:
    spec = _sequence_spec()
    splits = compute_splits(spec, series)
    holed = series.assign(x=series["x"].where(series.index != 3))
    with pytest.raises(InvalidInput, match="column 'x' has 1 missing values; sequence models"):
        execute_run(holed, _columns(holed, s="categorical"), spec, splits, "rnn", {}, 0, tmp_path)
    short = TaskSpec.model_validate({**spec.model_dump(), "sequence": {
        "series_column": "s", "time_column": "t", "context_length": 30, "horizon": 2}})  # fmt: skip
    with pytest.raises(InvalidInput, match="holds 0 complete windows of 30 \\+ 2 rows"):
        execute_run(series, _columns(series, s="categorical"), short, splits, "rnn", {}, 0,
                    tmp_path)  # fmt: skip


DEMO_ALGORITHMS: dict[str, dict[str, Any]] = {
    "linear": {},
    "lightgbm": {"n_estimators": 30},
    "random_forest": {"n_estimators": 5},
    "extra_trees": {"n_estimators": 5},
    "dnn": {"depth": 1, "width": 16, "epochs": 4, **TORCH_FAST},
}


def _demo(name: str) -> tuple[pd.DataFrame, str]:
    loaders = {"breast_cancer": (load_breast_cancer, "binary"),
               "wine": (load_wine, "multiclass"),
               "digits": (load_digits, "multiclass"),
               "diabetes": (load_diabetes, "regression")}  # fmt: skip
    loader, task_type = loaders[name]
    return loader(as_frame=True).frame.rename(columns={"target": "y"}), task_type


@pytest.mark.parametrize("task", ["breast_cancer", "wine", "digits", "diabetes"])
def test_every_demo_task_gets_five_algorithms_on_its_leaderboard(task: str, tmp_path: Path) -> None:
    """Acceptance: holdout 20 % + inner 5-fold; LightGBM and the DNN among five algorithms,
    each scored, with non-empty learning curves for the iterative ones."""
    frame, task_type = _demo(task)
    spec = TaskSpec.model_validate({"type": task_type, "target_columns": ["y"]})
    splits = compute_splits(spec, frame)
    for name, params in DEMO_ALGORITHMS.items():
        result = execute_run(frame, _columns(frame), spec, splits, name, params, 0, tmp_path / name)
        assert result.score is not None, name
        if name in ("lightgbm", "dnn"):
            curves = read_curves(tmp_path / name)
            assert all(curves[f"fold_0/inner_{i}"]["valid_loss"] for i in range(5)), name
            assert curves["fold_0"]["train_loss"], name
