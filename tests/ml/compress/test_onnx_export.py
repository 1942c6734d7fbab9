"""ONNX export: every supported model kind predicts as its native self, within 1e-4."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine
from sklearn.pipeline import Pipeline

from openmaas.errors import InvalidFile, InvalidInput, Unavailable
from openmaas.ml.catalog import get_algorithm
from openmaas.ml.compress import OnnxPredictor, export_onnx
from openmaas.ml.compress._extras import require
from openmaas.ml.preprocessing import fit_pipeline, make_pipeline

TOL = 1e-4
SMALL: dict[str, dict[str, Any]] = {
    "lightgbm": {"n_estimators": 60, "early_stopping_rounds": None},
    "linear": {},
    "random_forest": {"n_estimators": 15, "min_samples_leaf": 3},
    "extra_trees": {"n_estimators": 15, "min_samples_leaf": 3},
    "dnn": {"epochs": 15, "width": 16},
}


def _pipeline(algorithm: str, task_type: str, X: pd.DataFrame, y: np.ndarray) -> Pipeline:
    model = get_algorithm(algorithm)(task_type=task_type, **SMALL[algorithm])
    pipe = make_pipeline(model, [(str(c), "numeric") for c in X.columns])
    return fit_pipeline(pipe, X, y)


@pytest.mark.parametrize("algorithm", list(SMALL))
def test_binary_pipeline_probabilities_match(algorithm: str, binary: Any) -> None:
    X, y = binary
    pipe = _pipeline(algorithm, "binary", X, y)
    onnx_model = OnnxPredictor(export_onnx(pipe))

    assert onnx_model.feature_names == list(X.columns)
    assert onnx_model.task == "classification"
    rows = X.to_numpy(dtype=np.float64)
    expected = pipe.predict_proba(X)
    np.testing.assert_allclose(onnx_model.predict_proba(rows), expected, atol=TOL, rtol=0)
    sure = np.abs(expected[:, 1] - 0.5) > 1e-3  # ties may break either way
    np.testing.assert_array_equal(onnx_model.predict(rows)[sure], pipe.predict(X)[sure])


@pytest.mark.parametrize("algorithm", ["lightgbm", "linear", "random_forest", "dnn"])
def test_multiclass_pipeline_keeps_string_labels(algorithm: str, multiclass: Any) -> None:
    X, y = multiclass
    pipe = _pipeline(algorithm, "multiclass", X, y)
    onnx_model = OnnxPredictor(export_onnx(pipe))

    assert onnx_model.classes is not None
    assert onnx_model.classes.tolist() == ["a", "b", "c"]
    rows = X.to_numpy(dtype=np.float32)  # float32 input is accepted as well
    np.testing.assert_allclose(
        onnx_model.predict_proba(rows), pipe.predict_proba(X.astype(np.float32)), atol=TOL, rtol=0
    )
    assert (onnx_model.predict(rows) == pipe.predict(X.astype(np.float32))).mean() > 0.99


@pytest.mark.parametrize("algorithm", list(SMALL))
def test_regression_pipeline_values_match(algorithm: str, regression: Any) -> None:
    X, y = regression
    pipe = _pipeline(algorithm, "regression", X, y)
    onnx_model = OnnxPredictor(export_onnx(pipe))

    assert onnx_model.task == "regression"
    predicted = onnx_model.predict(X.to_numpy())
    assert predicted.shape == (len(X),)
    assert predicted.flags.c_contiguous  # serialisers (orjson) need it
    np.testing.assert_allclose(predicted, pipe.predict(X), atol=TOL, rtol=0)


def test_multitarget_regression(regression: Any) -> None:
    X, y = regression
    targets = np.column_stack([y, -2.0 * y])
    pipe = _pipeline("random_forest", "multitarget", X, targets)
    predicted = OnnxPredictor(export_onnx(pipe)).predict(X.to_numpy())
    assert predicted.shape == (len(X), 2)
    np.testing.assert_allclose(predicted, pipe.predict(X), atol=TOL, rtol=0)


def test_bare_lightgbm_booster_binary_and_regression(binary: Any, regression: Any) -> None:
    for (X, y), objective in ((binary, "binary"), (regression, "regression")):
        rows = X.to_numpy()
        params = {"objective": objective, "num_leaves": 15, "verbosity": -1, "num_threads": 1}
        booster = lgb.train(params, lgb.Dataset(rows, y), num_boost_round=80)
        text = booster.model_to_string()  # a version is the model text
        loaded = lgb.Booster(model_str=text)
        onnx_model = OnnxPredictor(export_onnx(loaded))

        assert onnx_model.feature_names == [f"Column_{i}" for i in range(rows.shape[1])]
        if objective == "binary":
            assert onnx_model.classes is not None
            assert onnx_model.classes.tolist() == [0, 1]
            got = onnx_model.predict_proba(rows)[:, 1]
        else:
            got = onnx_model.predict(rows)
        np.testing.assert_allclose(got, loaded.predict(rows), atol=TOL, rtol=0)


def test_serving_benchmark_booster_file(binary: Any) -> None:
    """The reference model of the serving benchmark (LightGBM text, named features)."""
    path = Path(__file__).resolve().parents[4] / "shared/bench/serving/model/model.txt"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    booster = lgb.Booster(model_file=str(path))
    onnx_model = OnnxPredictor(export_onnx(booster))
    rows = binary[0].fillna(0.0).to_numpy()
    assert onnx_model.feature_names == [f"f{i}" for i in range(30)]
    np.testing.assert_allclose(
        onnx_model.predict_proba(rows)[:, 1], booster.predict(rows), atol=TOL, rtol=0
    )


def test_bare_catalog_model_and_given_feature_names(binary: Any) -> None:
    X, y = binary
    rows = X.to_numpy()
    model = get_algorithm("lightgbm")(task_type="binary", n_estimators=30).fit(rows, y)
    names = [f"x{i}" for i in range(rows.shape[1])]
    onnx_model = OnnxPredictor(export_onnx(model, feature_names=names))
    assert onnx_model.feature_names == names
    np.testing.assert_allclose(
        onnx_model.predict_proba(rows), model.predict_proba(rows), atol=TOL, rtol=0
    )


def test_lightgbm_early_stopped_model_exports_its_best_round(binary: Any) -> None:
    X, y = binary
    model = get_algorithm("lightgbm")(task_type="binary", n_estimators=300, learning_rate=0.3)
    model.fit(X[:400], y[:400], X_valid=X[400:], y_valid=y[400:])
    rows = X.to_numpy()
    np.testing.assert_allclose(
        OnnxPredictor(export_onnx(model)).predict_proba(rows),
        model.predict_proba(X),
        atol=TOL,
        rtol=0,
    )


def test_text_and_categorical_columns_are_refused(binary: Any) -> None:
    X, y = binary
    frame = X.iloc[:, :3].copy()
    frame["note"] = ["short", "a longer note"] * (len(frame) // 2) + ["x"] * (len(frame) % 2)
    frame["site"] = np.where(y == 1, "north", "south")
    columns = [
        *((str(c), "numeric") for c in X.columns[:3]),
        ("note", "text"),
        ("site", "categorical"),
    ]
    pipe = make_pipeline(get_algorithm("linear")(task_type="binary"), columns)
    fit_pipeline(pipe, frame, y)

    with pytest.raises(
        InvalidInput, match=r"columns 'note' \(text\), 'site' \(categorical\) are not"
    ):
        export_onnx(pipe)


def test_lightgbm_categorical_codes_are_refused(binary: Any) -> None:
    X, y = binary
    frame = X.iloc[:, :3].copy()
    frame["site"] = np.where(y == 1, "north", "south")
    columns = [*((str(c), "numeric") for c in X.columns[:3]), ("site", "categorical")]
    pipe = make_pipeline(get_algorithm("lightgbm")(task_type="binary", n_estimators=5), columns)
    fit_pipeline(pipe, frame, y)

    with pytest.raises(InvalidInput, match=r"'site' \(categorical\)"):
        export_onnx(pipe)


def test_algorithm_without_converter_is_refused(binary: Any) -> None:
    X, y = binary
    rows = X.fillna(0).to_numpy()
    rows = (rows - rows.mean(axis=0)) / rows.std(axis=0)
    model = get_algorithm("fm")(task_type="binary", epochs=1).fit(rows, y)
    with pytest.raises(InvalidInput, match="cannot export 'fm' to ONNX; supported:"):
        export_onnx(model)


def test_predictor_checks_its_input(binary: Any) -> None:
    X, y = binary
    rows = X.to_numpy()
    booster = lgb.train({"objective": "regression", "verbosity": -1}, lgb.Dataset(rows, y), 5)
    onnx_model = OnnxPredictor(export_onnx(booster))

    with pytest.raises(
        InvalidInput, match=r"expected a 2-D array of 30 feature columns; got shape \(569, 29\)"
    ):
        onnx_model.predict(rows[:, 1:])
    with pytest.raises(InvalidInput, match="a regression model has no class probabilities"):
        onnx_model.predict_proba(rows)
    with pytest.raises(InvalidFile, match="not a loadable ONNX model"):
        OnnxPredictor(b"not onnx")


@pytest.mark.parametrize("algorithm", ["linear", "lightgbm"])
def test_boolean_columns_infinities_and_empty_batches(algorithm: str, binary: Any) -> None:
    X, y = binary
    frame = X.iloc[:, :4].copy()
    frame["flag"] = (X.iloc[:, 5] > X.iloc[:, 5].median()).astype(float)
    frame.loc[::5, "flag"] = np.nan
    frame.iloc[::3, 0] = np.inf  # read as missing, as the preprocessor does
    columns = [*((str(c), "numeric") for c in frame.columns[:4]), ("flag", "boolean")]
    pipe = _pipeline_with(algorithm, columns, frame, y)
    onnx_model = OnnxPredictor(export_onnx(pipe))

    rows = frame.to_numpy()
    np.testing.assert_allclose(
        onnx_model.predict_proba(rows), pipe.predict_proba(frame), atol=TOL, rtol=0
    )
    assert onnx_model.predict_proba(rows[:0]).shape == (0, 2)
    assert onnx_model.predict(rows[:0]).shape == (0,)


def _pipeline_with(algorithm: str, columns: Any, X: pd.DataFrame, y: np.ndarray) -> Pipeline:
    model = get_algorithm(algorithm)(task_type="binary", **SMALL[algorithm])
    return fit_pipeline(make_pipeline(model, columns), X, y)


def test_missing_extra_is_named() -> None:
    with pytest.raises(Unavailable, match=r"needs no_such_package: pip install 'openmaas\[onnx\]'"):
        require("no_such_package.sub")


@pytest.mark.parametrize(
    ("objective", "extra"),
    [("poisson", {}), ("multiclass", {"num_class": 3}), ("huber", {}), ("binary", {})],
)
def test_bare_booster_objectives_match(objective: str, extra: dict[str, Any]) -> None:
    X, y = load_wine(return_X_y=True)
    target = {"poisson": y + 1.0, "huber": y * 10.0, "binary": (y > 0) * 1}.get(objective, y)
    params = {"objective": objective, "num_leaves": 7, "verbosity": -1, **extra}
    booster = lgb.train(params, lgb.Dataset(X, target), num_boost_round=30)
    onnx_model = OnnxPredictor(export_onnx(booster))
    native = booster.predict(X)
    if onnx_model.classes is None:
        got = onnx_model.predict(X)
    else:
        got = onnx_model.predict_proba(X)
        got = got[:, 1] if native.ndim == 1 else got
    np.testing.assert_allclose(got, native, atol=TOL, rtol=0)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"objective": "multiclassova", "num_class": 3}, "objective 'multiclassova' is not"),
        ({"objective": "regression", "linear_tree": True}, r"linear trees \(linear_tree=true\)"),
        ({"objective": "regression", "zero_as_missing": True}, "splits treating zero as missing"),
        ({"objective": "cross_entropy"}, "objective 'cross_entropy' is not supported; supported: "),
    ],
)
def test_boosters_onnx_cannot_express_are_refused(params: dict[str, Any], message: str) -> None:
    X, y = load_wine(return_X_y=True)
    X = X.copy()
    X[::4, 3] = 0.0
    target = y / 2.0 if params["objective"] == "cross_entropy" else y
    booster = lgb.train({**params, "verbosity": -1}, lgb.Dataset(X, target), num_boost_round=5)
    with pytest.raises(InvalidInput, match=message):
        export_onnx(booster)


def test_predictor_takes_a_frame_by_column_name(binary: Any) -> None:
    X, y = binary
    pipe = _pipeline("linear", "binary", X, y)
    onnx_model = OnnxPredictor(export_onnx(pipe))
    shuffled = X[list(reversed(X.columns))].assign(extra="ignored")
    np.testing.assert_allclose(
        onnx_model.predict_proba(shuffled), pipe.predict_proba(X), atol=TOL, rtol=0
    )
    with pytest.raises(InvalidInput, match="the input has no column 'mean_radius'"):
        onnx_model.predict(X.drop(columns="mean_radius"))


def test_lightgbm_regressor_is_exact_on_large_targets_and_missing_values(regression: Any) -> None:
    """Targets in the millions: float32 trees would be off by ~0.1, double ones are not."""
    X, y = regression
    rows = X.to_numpy()  # column 1 has NaN in training: its splits send NaN a learnt way
    params = {"objective": "regression", "num_leaves": 31, "verbosity": -1}
    booster = lgb.train(params, lgb.Dataset(rows, y * 1e4 + 5e6), num_boost_round=300)
    probe = rows.copy()
    probe[::3, 0] = np.nan  # never missing in training: LightGBM reads NaN as 0.0
    probe[1::3, 1] = np.nan
    onnx_model = OnnxPredictor(export_onnx(booster))
    np.testing.assert_allclose(onnx_model.predict(probe), booster.predict(probe), atol=TOL, rtol=0)


def test_lightgbm_trees_without_a_split(regression: Any) -> None:
    X, y = regression
    rows = X.to_numpy()
    params = {"objective": "regression", "min_data_in_leaf": len(rows), "verbosity": -1}
    booster = lgb.train(params, lgb.Dataset(rows, y), num_boost_round=3)
    onnx_model = OnnxPredictor(export_onnx(booster))
    np.testing.assert_allclose(onnx_model.predict(rows), booster.predict(rows), atol=TOL, rtol=0)


def test_unfitted_model_is_refused() -> None:
    with pytest.raises(InvalidInput, match="cannot export an unfitted 'linear' model to ONNX"):
        export_onnx(get_algorithm("linear")(task_type="binary"))
