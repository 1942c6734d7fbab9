"""Serving LightGBM versions on ONNX Runtime: the booster's answers, or the booster itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from openmaas.ml import flavors
from openmaas.ml.catalog import get_algorithm
from openmaas.ml.catalog.persist import save_pipeline
from openmaas.ml.compress.accelerate import booster_session
from openmaas.ml.preprocessing import fit_pipeline, make_pipeline

TOL = 1e-12


def _booster(objective: str, **extra: Any) -> tuple[lgb.Booster, np.ndarray]:
    X, y = load_wine(return_X_y=True)
    X = X.copy()
    X[::5, 2] = np.nan  # missing values take the trees' default sides
    target = {"poisson": y + 1.0, "regression": y * 1e4 + 5e6, "binary": (y > 0) * 1}
    params = {"objective": objective, "num_leaves": 15, "verbosity": -1, **extra}
    data = lgb.Dataset(X, target.get(objective, y))
    return lgb.train(params, data, num_boost_round=60), X


def _saved(booster: lgb.Booster, tmp_path: Path) -> Path:
    booster.save_model(str(tmp_path / "model.txt"))
    return tmp_path


@pytest.mark.parametrize(
    ("objective", "extra"),
    [("binary", {}), ("multiclass", {"num_class": 3}), ("regression", {}), ("poisson", {})],
)
def test_accelerated_predictor_gives_the_boosters_answers(
    objective: str, extra: dict[str, Any], tmp_path: Path
) -> None:
    booster, X = _booster(objective, **extra)
    fast = flavors.load("lightgbm", _saved(booster, tmp_path), accelerate=True)
    native = flavors.load("lightgbm", tmp_path)
    assert fast.accelerated and not native.accelerated
    for rows in (X[:1], X[:11], X):
        got, want = fast.predict(rows), native.predict(rows)
        assert got.predictions.shape == want.predictions.shape
        assert got.predictions.flags.c_contiguous  # orjson writes only contiguous arrays
        np.testing.assert_allclose(got.predictions, want.predictions, rtol=TOL, atol=TOL)
        if want.probabilities is not None:
            np.testing.assert_allclose(got.probabilities, want.probabilities, rtol=TOL, atol=TOL)


def test_values_on_split_thresholds_go_the_boosters_way(tmp_path: Path) -> None:
    booster, _ = _booster("regression")
    predict = booster_session(booster)
    assert predict is not None
    thresholds = [
        (node["split_feature"], node["threshold"])
        for tree in booster.dump_model()["tree_info"]
        for node in [tree["tree_structure"]]
        if "split_index" in node
    ]
    X = np.tile(np.nanmedian(_booster("regression")[1], axis=0), (len(thresholds), 1))
    for i, (feature, threshold) in enumerate(thresholds):
        X[i, feature] = threshold
    np.testing.assert_allclose(predict(X), booster.predict(X), rtol=TOL, atol=TOL)


@pytest.mark.parametrize(
    "params",
    [
        {"objective": "regression", "zero_as_missing": True},
        {"objective": "multiclassova", "num_class": 3},
        {"objective": "regression", "linear_tree": True},
    ],
)
def test_boosters_without_an_exact_onnx_form_stay_native(
    params: dict[str, Any], tmp_path: Path
) -> None:
    X, y = load_wine(return_X_y=True)
    X = X.copy()
    X[::4, 3] = 0.0
    booster = lgb.train({**params, "verbosity": -1}, lgb.Dataset(X, y), num_boost_round=5)
    assert booster_session(booster) is None
    predictor = flavors.load("lightgbm", _saved(booster, tmp_path), accelerate=True)
    assert not predictor.accelerated
    np.testing.assert_allclose(
        np.asarray(predictor.predict(X).predictions).ravel(),
        np.asarray(booster.predict(X)).argmax(axis=1)
        if params["objective"] == "multiclassova"
        else booster.predict(X),
    )


def test_other_inputs_take_the_boosters_path(tmp_path: Path) -> None:
    booster, X = _booster("binary")
    predictor = flavors.load("lightgbm", _saved(booster, tmp_path), accelerate=True)
    as_int = np.round(np.nan_to_num(X[:5])).astype(np.int64)  # not float64: the booster converts
    np.testing.assert_allclose(predictor.predict(as_int).predictions, booster.predict(as_int))
    with pytest.raises(Exception, match="number of features"):  # LightGBM's own message
        predictor.predict(X[:, :5])


SMALL: dict[str, dict[str, Any]] = {
    "lightgbm": {"n_estimators": 40, "early_stopping_rounds": None},
    "linear": {},
    "random_forest": {"n_estimators": 10, "min_samples_leaf": 3},
}


def _saved_pipeline(
    algorithm: str, task_type: str, X: pd.DataFrame, y: np.ndarray, tmp_path: Path
) -> Path:
    model = get_algorithm(algorithm)(task_type=task_type, **SMALL[algorithm])
    pipe = make_pipeline(model, [(str(c), "numeric") for c in X.columns])
    save_pipeline(fit_pipeline(pipe, X, y), tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("algorithm", "task_type", "data", "fast"),
    [
        ("lightgbm", "binary", "binary", True),
        ("linear", "multiclass", "multiclass", True),  # string labels
        ("lightgbm", "regression", "regression", True),
        ("random_forest", "binary", "binary", False),  # float32 trees: kept native
    ],
)
def test_pipelines_that_compute_in_double_run_on_onnx_runtime(
    algorithm: str, task_type: str, data: str, fast: bool, request: Any, tmp_path: Path
) -> None:
    X, y = request.getfixturevalue(data)
    names = [str(c) for c in X.columns][::-1]  # the signature's order need not be the model's
    directory = _saved_pipeline(algorithm, task_type, X, y, tmp_path)
    predictor = flavors.load("pipeline", directory, names, accelerate=True)
    native = flavors.load("pipeline", directory, names)
    assert predictor.accelerated is fast and predictor.matrix_input is fast
    assert not native.accelerated and not native.matrix_input
    rows = X[names].to_numpy(dtype=np.float64)  # NaNs included: the imputer's job
    got, want = predictor.predict(rows), native.predict(X[names])
    assert got.predictions.tolist() == want.predictions.tolist() or np.allclose(
        got.predictions, want.predictions, rtol=TOL, atol=TOL
    )
    if want.probabilities is not None:
        np.testing.assert_allclose(got.probabilities, want.probabilities, rtol=TOL, atol=TOL)
    assert predictor.predict(X[names]).predictions.shape == want.predictions.shape  # frames too


def test_pipelines_with_category_columns_stay_native(binary: Any, tmp_path: Path) -> None:
    X, y = binary
    X = X.assign(site=np.where(np.arange(len(X)) % 2, "north", "south"))
    model = get_algorithm("lightgbm")(task_type="binary", **SMALL["lightgbm"])
    columns = [(str(c), "numeric") for c in X.columns[:-1]] + [("site", "categorical")]
    save_pipeline(fit_pipeline(make_pipeline(model, columns), X, y), tmp_path)
    predictor = flavors.load("pipeline", tmp_path, list(X.columns), accelerate=True)
    assert not predictor.accelerated and not predictor.matrix_input
    assert len(predictor.predict(X).predictions) == len(X)
