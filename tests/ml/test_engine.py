"""The training engine on bundled scikit-learn data: metrics, predictions, folds, seeds,
the plain-LightGBM acceptance, resumption, warm start and refusals.

Other task types (anomaly, recommendation, sequence) are in ``test_engine_tasks.py``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.metrics import roc_auc_score

from openmaas.errors import InvalidFile, InvalidInput
from openmaas.ml.catalog.persist import load_pipeline
from openmaas.ml.data.schema import ColumnSchema
from openmaas.ml.engine import (
    RunCallbacks,
    RunResult,
    execute_run,
    read_curves,
    read_predictions,
)
from openmaas.ml.engine.columns import feature_columns
from openmaas.ml.engine.resume import unpack
from openmaas.ml.splits import Splits, compute_splits
from openmaas.ml.tasks import TaskSpec

TINY: dict[str, dict[str, Any]] = {
    "linear": {},
    "lightgbm": {"n_estimators": 40},
    "random_forest": {"n_estimators": 8},
    "dnn": {"depth": 1, "width": 8, "epochs": 6, "batch_size": 64, "learning_rate": 0.01},
}


class Recorder(RunCallbacks):
    """Keeps every event, fold payload and checkpoint, as a job runner would."""

    def __init__(self, stop_at: tuple[str, int] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.payloads: dict[int, bytes] = {}
        self.states: dict[str, bytes] = {}
        self.stop_at = stop_at  # (fit key, epoch): raise there, as a killed job

    def on_progress(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        if self.stop_at == (event.get("key"), event.get("epoch")):
            self.stop_at = None
            raise KeyboardInterrupt("killed")

    def on_fold_done(self, fold: int, payload: bytes) -> None:
        self.payloads[fold] = payload

    def completed_folds(self) -> dict[int, bytes]:
        return dict(self.payloads)

    def checkpoint(self, key: str, epoch: int, state: bytes) -> None:
        self.states[key] = state

    def resume_state(self, key: str) -> bytes | None:
        return self.states.get(key)

    def epochs(self, key: str) -> list[int]:
        return [e["epoch"] for e in self.events if e["event"] == "epoch" and e["key"] == key]


def _columns(frame: pd.DataFrame, **kinds: str) -> list[ColumnSchema]:
    return [ColumnSchema(c, kinds.get(c, "numeric"), "double") for c in frame.columns]  # type: ignore[arg-type]


def _spec(type: str, **protocol: Any) -> TaskSpec:
    return TaskSpec.model_validate({"type": type, "target_columns": ["y"], "protocol": protocol})


def _assert_covers(predictions: pd.DataFrame, splits: Splits) -> None:
    """Per outer fold: every training row once as oof (by the inner fold validating it),
    every test row once as test."""
    for f in range(splits.n_outer):
        train, test = splits.train_test(f)
        mine = predictions[predictions["outer_fold"] == f]
        oof = mine[mine["part"] == "oof"]
        assert sorted(oof["row"]) == train.tolist()
        assert (oof["inner_fold"].to_numpy() == splits.inner[f][oof["row"]]).all()
        tested = mine[mine["part"] == "test"]
        assert tested["row"].tolist() == test.tolist() and (tested["inner_fold"] == -1).all()


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    return load_breast_cancer(as_frame=True).frame.rename(columns={"target": "y"})


@pytest.fixture(scope="module")
def binary(cancer: pd.DataFrame) -> tuple[TaskSpec, Splits]:
    spec = _spec("binary")  # the demo protocol: holdout 20 % + inner 5-fold
    return spec, compute_splits(spec, cancer)


@pytest.fixture(scope="module")
def runs(
    cancer: pd.DataFrame, binary: tuple[TaskSpec, Splits], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[RunResult, Path]]:
    spec, splits = binary
    out = {}
    for name in ("linear", "lightgbm", "random_forest"):
        directory = tmp_path_factory.mktemp(name)
        result = execute_run(cancer, _columns(cancer), spec, splits, name, TINY[name], 7, directory)
        out[name] = result, directory
    return out


@pytest.mark.parametrize("name", ["linear", "lightgbm", "random_forest"])
def test_binary_run_scores_and_predicts_every_row_once(
    name: str,
    runs: dict[str, tuple[RunResult, Path]],
    binary: tuple[TaskSpec, Splits],
    cancer: pd.DataFrame,
) -> None:
    spec, splits = binary
    result, directory = runs[name]
    assert list(result.metrics) == ["roc_auc", "log_loss", "accuracy"]
    assert (result.primary_metric, result.direction) == ("roc_auc", "maximize")
    assert result.score == result.metrics["roc_auc"]["mean"] > 0.9
    assert result.score_std is None  # one outer fold
    assert all(result.validation[m]["mean"] is not None for m in spec.metrics)
    assert len(result.folds[0].inner_metrics) == 5
    predictions = read_predictions(directory / "predictions.parquet")
    _assert_covers(predictions, splits)
    train = splits.train_test(0)[0]
    assert np.allclose(predictions[["proba_0", "proba_1"]].sum(axis=1), 1.0)
    assert list(predictions.columns[:4]) == ["row", "outer_fold", "part", "inner_fold"]
    assert RunResult.read(directory) == result
    assert result.final == {
        "source": "fold_0",
        "rows": len(train),
        "length": result.folds[0].length,
    }
    refit, final = (load_pipeline(directory / "models" / m) for m in ("fold_0", "final"))
    assert np.array_equal(refit.predict_proba(cancer), final.predict_proba(cancer))
    packages = result.environment["packages"]
    assert {"numpy", "pandas", "scikit-learn", "lightgbm"} <= set(packages)
    assert result.environment["seed"] == 7 and result.wall_time_s > 0 and result.peak_rss_mb
    assert "random_state" not in result.params


def test_out_of_fold_predictions_are_what_each_inner_model_predicts(
    runs: dict[str, tuple[RunResult, Path]], binary: tuple[TaskSpec, Splits], cancer: pd.DataFrame
) -> None:
    """LightGBM's come from the validation scores kept while training: the same numbers."""
    _, splits = binary
    _, directory = runs["lightgbm"]
    predictions = read_predictions(directory / "predictions.parquet")
    for i in range(splits.n_inner):
        _, valid = splits.inner_train_valid(0, i)
        stored = predictions[(predictions["part"] == "oof") & (predictions["inner_fold"] == i)]
        pipe = load_pipeline(directory / "models" / "inner" / "fold_0" / f"inner_{i}")
        assert stored["row"].tolist() == valid.tolist()
        expected = pipe.predict_proba(cancer.drop(columns="y").iloc[valid])
        assert np.array_equal(stored[["proba_0", "proba_1"]].to_numpy(), expected)
        assert np.array_equal(stored["prediction"].to_numpy(), pipe.predict(cancer.iloc[valid]))


def test_iterative_algorithms_keep_learning_curves(runs: dict[str, tuple[RunResult, Path]]) -> None:
    result, directory = runs["lightgbm"]
    curves = read_curves(directory)
    inner = curves["fold_0/inner_0"]
    assert len(inner["train_loss"]) == len(inner["valid_loss"]) > 0
    assert len(curves["fold_0"]["train_loss"]) == result.folds[0].length  # fixed-length refit
    assert read_curves(runs["linear"][1])["fold_0"] == {}


def test_warnings_of_a_fit_go_to_the_run_log(
    cancer: pd.DataFrame, binary: tuple[TaskSpec, Splits], tmp_path: Path
) -> None:
    spec, splits = binary
    execute_run(cancer, _columns(cancer), spec, splits, "linear", {"max_iter": 10}, 0, tmp_path)
    log = (tmp_path / "run.log").read_text().splitlines()
    assert any(line.startswith("fold_0/inner_0: ConvergenceWarning: ") for line in log)
    assert "fold_0/refit: fitted on 455 rows in " in "\n".join(log)


def test_preprocessing_is_fitted_inside_each_fold(cancer: pd.DataFrame, tmp_path: Path) -> None:
    spec = _spec("binary", outer={"method": "kfold", "k": 2}, inner_folds=2)
    splits = compute_splits(spec, cancer)
    result = execute_run(cancer, _columns(cancer), spec, splits, "linear", {}, 0, tmp_path)
    X = cancer.drop(columns="y").to_numpy()

    def scaler_mean(where: str) -> np.ndarray:
        prep = load_pipeline(tmp_path / "models" / where).steps[0][1]
        return prep.transformer_.named_transformers_["numeric"]["scale"].mean_[: X.shape[1]]

    for f in range(2):
        train, _ = splits.train_test(f)
        assert np.allclose(scaler_mean(f"fold_{f}"), X[train].mean(axis=0))
    assert not np.allclose(scaler_mean("fold_0"), scaler_mean("fold_1"))
    assert np.allclose(scaler_mean("final"), X.mean(axis=0))  # k-fold: refit on every row
    assert result.final == {"source": "refit", "rows": len(cancer), "length": None}
    _assert_covers(read_predictions(tmp_path / "predictions.parquet"), splits)
    assert result.score_std is not None and len(result.metrics["roc_auc"]["folds"]) == 2


def test_same_seed_same_results(
    cancer: pd.DataFrame,
    binary: tuple[TaskSpec, Splits],
    runs: dict[str, tuple[RunResult, Path]],
    tmp_path: Path,
) -> None:
    spec, splits = binary
    first, directory = runs["random_forest"]
    again = execute_run(cancer, _columns(cancer), spec, splits, "random_forest",
                        TINY["random_forest"], 7, tmp_path / "again")  # fmt: skip
    other = execute_run(cancer, _columns(cancer), spec, splits, "random_forest",
                        TINY["random_forest"], 8, tmp_path / "other")  # fmt: skip
    assert again.metrics == first.metrics and again.fingerprint == first.fingerprint
    pd.testing.assert_frame_equal(
        read_predictions(tmp_path / "again" / "predictions.parquet"),
        read_predictions(directory / "predictions.parquet"),
    )
    assert other.metrics != first.metrics  # the seed reaches every fit


def test_lightgbm_through_execute_run_equals_a_plain_lightgbm_script_on_the_same_folds(
    cancer: pd.DataFrame,
    binary: tuple[TaskSpec, Splits],
    runs: dict[str, tuple[RunResult, Path]],
) -> None:
    """Acceptance: LightGBM's score through the platform is within 0.01 of a plain
    script's on the same folds."""
    _, splits = binary
    platform = runs["lightgbm"][0].score
    X, y = cancer.drop(columns="y").to_numpy(), cancer["y"].to_numpy()
    params = {"objective": "binary", "verbosity": -1, "deterministic": True, "num_threads": 1}
    train, test = splits.train_test(0)
    rounds = []  # the platform's protocol: early stopping on each inner fold, then refit
    for i in range(splits.n_inner):
        fit, valid = splits.inner_train_valid(0, i)
        booster = lgb.train(
            params, lgb.Dataset(X[fit], y[fit]), num_boost_round=40,
            valid_sets=[lgb.Dataset(X[valid], y[valid])],
            callbacks=[lgb.early_stopping(20, verbose=False)],
        )  # fmt: skip
        rounds.append(booster.best_iteration)
    booster = lgb.train(params, lgb.Dataset(X[train], y[train]), round(np.mean(rounds)))
    script = roc_auc_score(y[test], booster.predict(X[test]))
    assert platform == pytest.approx(script, abs=0.01)
    default = lgb.LGBMClassifier(n_estimators=40, verbosity=-1, n_jobs=1).fit(X[train], y[train])
    assert platform == pytest.approx(
        roc_auc_score(y[test], default.predict_proba(X[test])[:, 1]), abs=0.01
    )


def test_multiclass_labels_and_regression(tmp_path: Path) -> None:
    wine = load_wine(as_frame=True).frame.rename(columns={"target": "y"})
    wine["y"] = wine["y"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    spec = _spec("multiclass", inner_folds=3)
    result = execute_run(wine, _columns(wine, y="categorical"), spec, compute_splits(spec, wine),
                         "lightgbm", TINY["lightgbm"], 0, tmp_path / "wine")  # fmt: skip
    assert result.score is not None and result.score > 0.8
    predictions = read_predictions(tmp_path / "wine" / "predictions.parquet")
    assert {"proba_barbera", "proba_barolo", "proba_grignolino"} <= set(predictions.columns)
    assert set(predictions["prediction"]) <= {"barolo", "grignolino", "barbera"}

    diabetes = load_diabetes(as_frame=True).frame.rename(columns={"target": "y"})
    spec = _spec("regression", inner_folds=3)
    result = execute_run(diabetes, _columns(diabetes), spec, compute_splits(spec, diabetes),
                         "linear", {}, 0, tmp_path / "diabetes")  # fmt: skip
    assert (result.primary_metric, result.direction) == ("rmse", "minimize")
    assert 40 < result.metrics["rmse"]["mean"] < 70 and result.metrics["r2"]["mean"] > 0.3
    predictions = read_predictions(tmp_path / "diabetes" / "predictions.parquet")
    assert predictions["prediction"].dtype == np.float64


def test_a_class_missing_from_an_inner_training_part_is_still_predicted(tmp_path: Path) -> None:
    wine = load_wine(as_frame=True).frame.rename(columns={"target": "y"})
    spec = _spec("multiclass", stratify=False, inner_folds=3)
    splits = compute_splits(spec, wine)
    rare = splits.inner_train_valid(0, 0)[1][:2]  # only ever in inner fold 0's validation
    wine.loc[rare, "y"] = 9
    result = execute_run(wine, _columns(wine), spec, splits, "lightgbm", TINY["lightgbm"], 0,
                         tmp_path)  # fmt: skip
    predictions = read_predictions(tmp_path / "predictions.parquet").set_index("row")
    assert (predictions.loc[rare, "proba_9"] == 0.0).all()  # the inner fit never saw class 9
    assert result.folds[0].inner_metrics[0]["accuracy"] is not None


def test_a_resumed_run_skips_completed_folds_and_ends_the_same(
    cancer: pd.DataFrame, tmp_path: Path
) -> None:
    spec = _spec("binary", outer={"method": "kfold", "k": 2}, inner_folds=2)
    splits = compute_splits(spec, cancer)
    params = {**TINY["lightgbm"], "checkpoint_every": 5}
    whole = Recorder()
    first = execute_run(cancer, _columns(cancer), spec, splits, "lightgbm", params, 3,
                        tmp_path / "whole", callbacks=whole)  # fmt: skip
    assert set(whole.payloads) == {0, 1}  # the final refit has none: nothing follows it

    killed = Recorder(stop_at=("fold_1/refit", 12))  # completed fold 0, killed in fold 1
    with pytest.raises(KeyboardInterrupt, match="killed"):
        execute_run(cancer, _columns(cancer), spec, splits, "lightgbm", params, 3,
                    tmp_path / "killed", callbacks=killed)  # fmt: skip
    assert set(killed.payloads) == {0}
    killed.events.clear()
    resumed = execute_run(
        cancer,
        _columns(cancer),
        spec,
        splits,
        "lightgbm",
        params,
        3,
        tmp_path / "resumed",
        callbacks=killed,
    )  # fmt: skip  (another worker)
    assert (tmp_path / "resumed" / "models" / "inner" / "fold_0" / "inner_1").is_dir()
    assert killed.epochs("fold_1/refit")[0] == 11  # from the checkpoint at round 10
    assert not killed.epochs("fold_0/refit")  # fold 0 restored, not refitted
    assert resumed.resumed_folds == [0]
    assert resumed.metrics == first.metrics and resumed.validation == first.validation
    timeless = [[dataclasses.replace(f, seconds=0.0) for f in r.folds] for r in (resumed, first)]
    assert timeless[0] == timeless[1]
    pd.testing.assert_frame_equal(
        read_predictions(tmp_path / "resumed" / "predictions.parquet"),
        read_predictions(tmp_path / "whole" / "predictions.parquet"),
    )
    assert read_curves(tmp_path / "resumed") == read_curves(tmp_path / "whole")


def test_one_outer_fold_packs_no_payload(cancer: pd.DataFrame, tmp_path: Path) -> None:
    """Only writing the results follows a single outer fold: a payload would not pay."""
    recorder = Recorder()
    spec = _spec("binary", inner_folds=2)
    execute_run(cancer, _columns(cancer), spec, compute_splits(spec, cancer), "linear", {}, 0,
                tmp_path, callbacks=recorder)  # fmt: skip
    assert recorder.payloads == {}


def test_a_payload_from_another_run_is_refused(cancer: pd.DataFrame, tmp_path: Path) -> None:
    spec = _spec("binary", outer={"method": "kfold", "k": 2}, inner_folds=2)
    splits = compute_splits(spec, cancer)
    recorder = Recorder()
    execute_run(cancer, _columns(cancer), spec, splits, "linear", {}, 0, tmp_path / "a",
                callbacks=recorder)  # fmt: skip
    with pytest.raises(InvalidInput, match="completed fold 0 was produced by a different run"):
        execute_run(cancer, _columns(cancer), spec, splits, "linear", {"alpha": 2.0}, 0,
                    tmp_path / "b", callbacks=recorder)  # fmt: skip
    assert not (tmp_path / "b" / "models").exists()  # refused before writing anything


def test_payloads_are_built_only_for_callbacks_that_keep_them(
    cancer: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openmaas.ml.engine import run as engine_run

    def refuse(*args: Any) -> bytes:
        raise AssertionError("a payload was packed for callbacks that drop it")

    spec = _spec("binary", outer={"method": "kfold", "k": 2}, inner_folds=2)
    splits = compute_splits(spec, cancer)
    monkeypatch.setattr(engine_run, "pack", refuse)
    result = execute_run(cancer, _columns(cancer), spec, splits, "linear", {}, 0, tmp_path)
    assert [f.fold for f in result.folds] == [0, 1] and result.final["source"] == "refit"


def test_a_payload_cannot_write_outside_its_models(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("fold.json", json.dumps({"fingerprint": "f", "models": ["models/fold_0"]}))
        archive.writestr("models/fold_0/../../../evil.txt", "x")
    evil = re.escape("unexpected file 'models/fold_0/../../../evil.txt'")
    with pytest.raises(InvalidFile, match=evil):
        unpack(buffer.getvalue(), tmp_path, fingerprint="f", what="completed fold 0")
    with pytest.raises(InvalidFile, match="cannot read the payload of completed fold 0"):
        unpack(b"not a zip", tmp_path, fingerprint="f", what="completed fold 0")
    assert list(tmp_path.iterdir()) == []


def test_warm_start_continues_each_fold_from_the_parent(
    cancer: pd.DataFrame, binary: tuple[TaskSpec, Splits], runs: dict[str, tuple[RunResult, Path]],
    tmp_path: Path,
) -> None:  # fmt: skip
    spec, splits = binary
    parent, parent_dir = runs["lightgbm"]
    child = execute_run(cancer, _columns(cancer), spec, splits, "lightgbm",
                        {"n_estimators": 10, "learning_rate": 0.05}, 7, tmp_path,
                        parent_dir=parent_dir)  # fmt: skip
    assert child.parent is not None
    assert child.parent["fingerprint"] == parent.fingerprint
    assert child.parent["metrics"]["roc_auc"] == parent.score
    assert child.parent["delta"]["roc_auc"] == pytest.approx(child.score - parent.score)
    assert child.fingerprint != parent.fingerprint
    for where in ("fold_0", "inner/fold_0/inner_3"):
        before = load_pipeline(parent_dir / "models" / where)
        after = load_pipeline(tmp_path / "models" / where)
        grown = after.steps[-1][1].booster_.current_iteration()
        assert grown > before.steps[-1][1].booster_.current_iteration()
        assert np.array_equal(  # the parent's preprocessor, reused
            before.steps[0][1].transform(cancer), after.steps[0][1].transform(cancer)
        )


def test_warm_start_refusals(
    cancer: pd.DataFrame, binary: tuple[TaskSpec, Splits], runs: dict[str, tuple[RunResult, Path]],
    tmp_path: Path,
) -> None:  # fmt: skip
    spec, splits = binary
    with pytest.raises(InvalidInput, match="algorithm 'linear' cannot warm-start from a parent"):
        execute_run(cancer, _columns(cancer), spec, splits, "linear", {}, 0, tmp_path,
                    parent_dir=runs["linear"][1])  # fmt: skip
    with pytest.raises(InvalidInput, match="the parent run trained 'random_forest'"):
        execute_run(cancer, _columns(cancer), spec, splits, "lightgbm", {}, 0, tmp_path,
                    parent_dir=runs["random_forest"][1])  # fmt: skip
    assert not tmp_path.joinpath("result.json").exists()


@pytest.mark.parametrize(
    ("algorithm", "params", "message"),
    [
        ("nope", {}, "unknown algorithm 'nope'; valid: adaboost, bagging, dnn,"),
        ("ncf", {}, "algorithm 'ncf' does not support task type 'binary'; it supports: "
                    "recommendation"),
        ("lightgbm", {"n_estimators": 0}, "hyperparameter 'n_estimators' of algorithm "
                                          "'lightgbm' must be an integer in \\[1, 10000\\]; "
                                          "got 0"),
        ("lightgbm", {"depth": 3}, "unknown hyperparameter 'depth' for algorithm 'lightgbm'"),
        ("random_forest", {"random_state": 5}, "random_state is derived from the run's seed"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_before_fitting(
    cancer: pd.DataFrame, binary: tuple[TaskSpec, Splits], tmp_path: Path,
    algorithm: str, params: dict[str, Any], message: str,
) -> None:  # fmt: skip
    spec, splits = binary
    recorder = Recorder()
    with pytest.raises(InvalidInput, match=message):
        execute_run(cancer, _columns(cancer), spec, splits, algorithm, params, 0,
                    tmp_path / "out", callbacks=recorder)  # fmt: skip
    assert recorder.events == [] and not (tmp_path / "out").exists()


def test_bad_columns_and_splits_are_refused(
    cancer: pd.DataFrame, binary: tuple[TaskSpec, Splits], tmp_path: Path
) -> None:
    spec, splits = binary
    with pytest.raises(InvalidInput, match="the splits cover 569 rows but the frame has 100"):
        execute_run(cancer.head(100), _columns(cancer), spec, splits, "linear", {}, 0, tmp_path)
    with pytest.raises(InvalidInput, match="the target column 'y' is not in the dataset"):
        execute_run(cancer, _columns(cancer.drop(columns="y")), spec, splits, "linear", {}, 0,
                    tmp_path)  # fmt: skip
    only_target = cancer[["y"]]
    with pytest.raises(InvalidInput, match="the dataset has no feature column"):
        execute_run(only_target, _columns(only_target), spec, splits, "linear", {}, 0, tmp_path)
    lonely = cancer.assign(y=0)
    lonely.loc[splits.train_test(0)[1], "y"] = 1  # class 1 only in the test part
    message = "the training part of outer fold 0 holds only class 0; classification needs two"
    with pytest.raises(InvalidInput, match=message):
        execute_run(lonely, _columns(lonely), spec, splits, "linear", {}, 0, tmp_path)


def test_roles_decide_the_features() -> None:
    columns = [ColumnSchema(n, k, "x") for n, k in  # type: ignore[arg-type]
               [("y", "categorical"), ("g", "numeric"), ("t", "datetime"), ("v", "numeric"),
                ("f", "categorical")]]  # fmt: skip
    by_group = {"outer": {"method": "group", "group_column": "g"}}
    group = TaskSpec.model_validate({"type": "binary", "target_columns": ["y"],
                                     "protocol": by_group})  # fmt: skip
    assert [c.name for c in feature_columns(group, columns)] == ["t", "v", "f"]
    timed = TaskSpec.model_validate({"type": "binary", "target_columns": ["y"], "protocol": {
        "outer": {"method": "time", "time_column": "t"}}})  # fmt: skip
    assert [c.name for c in feature_columns(timed, columns)] == ["g", "t", "v", "f"]


def test_dnn_runs_with_learning_curves(cancer: pd.DataFrame, tmp_path: Path) -> None:
    spec = _spec("binary", inner_folds=2)
    splits = compute_splits(spec, cancer)
    result = execute_run(cancer, _columns(cancer), spec, splits, "dnn", TINY["dnn"], 0, tmp_path)
    assert result.score is not None and result.score > 0.9
    curves = read_curves(tmp_path)
    assert len(curves["fold_0/inner_0"]["valid_loss"]) > 0
    assert len(curves["fold_0"]["train_loss"]) == result.folds[0].length


def test_a_torch_run_killed_mid_refit_resumes_at_its_epoch(
    cancer: pd.DataFrame, tmp_path: Path
) -> None:
    spec = _spec("binary", outer={"method": "kfold", "k": 2}, inner_folds=2)
    splits = compute_splits(spec, cancer)
    params = {**TINY["dnn"], "patience": 0}
    whole = execute_run(cancer, _columns(cancer), spec, splits, "dnn", params, 1, tmp_path / "w")
    recorder = Recorder(stop_at=("fold_0/refit", 3))
    with pytest.raises(KeyboardInterrupt, match="killed"):
        execute_run(cancer, _columns(cancer), spec, splits, "dnn", params, 1, tmp_path / "r",
                    callbacks=recorder)  # fmt: skip
    recorder.events.clear()
    resumed = execute_run(cancer, _columns(cancer), spec, splits, "dnn", params, 1,
                          tmp_path / "r", callbacks=recorder)  # fmt: skip
    assert recorder.epochs("fold_0/refit") == [4, 5, 6]
    assert resumed.metrics == whole.metrics
