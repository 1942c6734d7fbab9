"""The algorithm catalog: scikit-learn's contract, the registry, preprocessing, files, LightGBM.

Torch algorithms are tested in their own module; here they are only named
(importing this module never imports torch).
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.utils.estimator_checks import parametrize_with_checks

from openmaas.errors import InvalidFile, InvalidInput
from openmaas.ml.catalog import registry
from openmaas.ml.catalog._gbdt_rounds import Rounds
from openmaas.ml.catalog.base import Algorithm, HyperParameter, TrainingCallbacks
from openmaas.ml.catalog.ensemble import AdaBoost
from openmaas.ml.catalog.forest import RandomForest
from openmaas.ml.catalog.gbdt import LightGBM
from openmaas.ml.catalog.persist import load_pipeline, load_skops, save_pipeline
from openmaas.ml.catalog.registry import (
    algorithm_names,
    check_params,
    check_supports,
    coerce_params,
    get_algorithm,
    list_algorithms,
    register,
    register_lazy,
)
from openmaas.ml.catalog.torch import ALGORITHMS as TORCH_ALGORITHMS
from openmaas.ml.preprocessing import (
    MedianImputer,
    ToFloat,
    fit_pipeline,
    make_pipeline,
    make_preprocessor,
)

TEST_PARAMS: dict[str, dict[str, Any]] = {
    "adaboost": {"n_estimators": 5},
    "bagging": {"n_estimators": 3},
    "extra_trees": {"n_estimators": 5},
    "lightgbm": {"n_estimators": 10, "min_child_samples": 2},
    "linear": {},
    "random_forest": {"n_estimators": 5},
}
# (algorithm, check) -> why it fails; every catalog estimator passes every check today.
EXPECTED_FAILURES: dict[tuple[str, str], str] = {}
# scikit-learn skips its array-API check unless SCIPY_ARRAY_API=1 (none of ours uses it).

FAMILIES = ("multiclass", "regression", "multitarget")


def _instances() -> list[Algorithm]:
    out = []
    for name, params in TEST_PARAMS.items():
        cls = get_algorithm(name)
        out += [cls(task_type=t, **params) for t in FAMILIES if t in cls.task_types]
    return out


def _expected_failures(estimator: Algorithm) -> dict[str, str]:
    return {
        check: why for (name, check), why in EXPECTED_FAILURES.items() if name == estimator.name
    }


@parametrize_with_checks(_instances(), expected_failed_checks=_expected_failures)
def test_sklearn_contract(estimator: Algorithm, check: Any) -> None:
    check(estimator)


def test_every_eager_algorithm_has_test_params() -> None:
    eager = set(algorithm_names()) - set(TORCH_ALGORITHMS)
    assert eager == set(TEST_PARAMS)


def test_importing_the_catalog_imports_no_torch_lightgbm_or_skops() -> None:
    code = (
        "import sys, openmaas.ml.catalog as c; print(len(c.algorithm_names())); "
        "print(sorted(m for m in ('torch', 'lightgbm', 'skops') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[1] == "[]"


@pytest.mark.parametrize("name", sorted(TEST_PARAMS))
def test_hyperparameters_document_every_constructor_argument(name: str) -> None:
    cls = get_algorithm(name)
    signature = inspect.signature(cls.__init__).parameters
    declared = {h.name: h for h in cls.hyperparameters()}
    assert list(signature)[1:] == ["task_type", *declared]
    for hp in declared.values():
        assert signature[hp.name].default == hp.default
        assert hp.check(hp.default, algorithm=name) == hp.default
        assert hp.doc and hp.to_json_schema()["description"] == hp.doc
    assert cls.description and cls.task_types


# --- registry --------------------------------------------------------------------------


def test_unknown_algorithm_names_the_valid_ones() -> None:
    valid = ", ".join(algorithm_names())
    with pytest.raises(InvalidInput, match=r"^unknown algorithm 'xgb'; valid: ") as e:
        get_algorithm("xgb")
    assert e.value.message == f"unknown algorithm 'xgb'; valid: {valid}"
    assert {"adaboost", "lightgbm", "dnn"} <= set(e.value.details["valid"])


def test_unsupported_task_type() -> None:
    msg = (
        "algorithm 'adaboost' does not support task type 'multitarget'; "
        "it supports: binary, multiclass, regression"
    )
    with pytest.raises(InvalidInput, match=f"^{msg}$"):
        check_supports(AdaBoost, "multitarget")
    with pytest.raises(InvalidInput, match=f"^{msg}$"):
        AdaBoost(task_type="multitarget").fit([[0.0], [1.0]], [[0.0, 1.0], [1.0, 0.0]])
    check_supports(AdaBoost, "binary")


def test_list_algorithms_by_task_type(monkeypatch: pytest.MonkeyPatch) -> None:
    # Leave torch out, whether or not an earlier test already loaded its algorithms.
    monkeypatch.setattr(registry, "_LAZY", {})
    kept = {k: v for k, v in registry._CLASSES.items() if k not in TORCH_ALGORITHMS}
    monkeypatch.setattr(registry, "_CLASSES", kept)
    names = [c.name for c in list_algorithms("multitarget")]
    assert names == ["bagging", "extra_trees", "linear", "random_forest"]
    assert [c.name for c in list_algorithms()] == sorted(TEST_PARAMS)


class _Stub(Algorithm):
    name = "stub"
    description = "A test double."
    task_types = frozenset({"regression"})
    choices: ClassVar[tuple[str, ...]] = ("a", "b")

    def __init__(
        self, task_type: str = "regression", kind: str = "a", on: bool = True, rate: float = 0.5
    ) -> None:
        self.task_type, self.kind, self.on, self.rate = task_type, kind, on, rate

    @classmethod
    def hyperparameters(cls) -> list[HyperParameter]:
        return [
            HyperParameter("kind", "str", "a", "A choice.", choices=cls.choices),
            HyperParameter("on", "bool", True, "A switch."),
            HyperParameter("rate", "float", 0.5, "A share.", low=0.0, high=1.0),
        ]

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> _Stub:
        self._validate_params()
        return self

    def predict(self, X: Any) -> Any:
        return np.zeros(len(X))

    def save(self, directory: Path) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, directory: Path) -> _Stub:
        raise NotImplementedError


@pytest.mark.parametrize(
    ("cls", "params", "message"),
    [
        (
            RandomForest,
            {"n_trees": 3},
            "unknown hyperparameter 'n_trees' for algorithm 'random_forest'; valid: "
            "n_estimators, max_depth, min_samples_leaf, max_features, n_jobs, random_state",
        ),
        (
            RandomForest,
            {"n_estimators": "3"},
            "hyperparameter 'n_estimators' of algorithm 'random_forest' must be an integer "
            "in [1, 5000]; got '3' (str)",
        ),
        (
            RandomForest,
            {"n_estimators": 2.0},
            "hyperparameter 'n_estimators' of algorithm 'random_forest' must be an integer "
            "in [1, 5000]; got 2.0 (float)",
        ),
        (
            RandomForest,
            {"n_estimators": True},
            "hyperparameter 'n_estimators' of algorithm 'random_forest' must be an integer "
            "in [1, 5000]; got True (bool)",
        ),
        (
            RandomForest,
            {"n_estimators": 0},
            "hyperparameter 'n_estimators' of algorithm 'random_forest' must be an integer "
            "in [1, 5000]; got 0 (int)",
        ),
        (
            RandomForest,
            {"max_features": 1.5},
            "hyperparameter 'max_features' of algorithm 'random_forest' must be a number "
            "in [0.01, 1] or null; got 1.5 (float)",
        ),
        (
            LightGBM,
            {"learning_rate": float("nan")},
            "hyperparameter 'learning_rate' of algorithm 'lightgbm' must be a number "
            "in [0.001, 1]; got nan (float)",
        ),
        (
            _Stub,
            {"kind": "c"},
            "hyperparameter 'kind' of algorithm 'stub' must be one of 'a', 'b'; got 'c' (str)",
        ),
        (
            _Stub,
            {"on": 1},
            "hyperparameter 'on' of algorithm 'stub' must be a boolean; got 1 (int)",
        ),
    ],
)
def test_bad_params(cls: type[Algorithm], params: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=r"^hyperparameter|^unknown") as e:
        check_params(cls, params)
    assert e.value.message == message
    if not message.startswith("unknown"):  # fit checks the same rules
        with pytest.raises(InvalidInput, match=r"^hyperparameter") as e2:
            cls(**params).fit(np.zeros((4, 1)), np.arange(4.0))
        assert e2.value.message == message


def test_check_params_merges_defaults() -> None:
    out = check_params(RandomForest, {"n_estimators": 7, "max_depth": None, "max_features": 1})
    assert out == {
        "n_estimators": 7,
        "max_depth": None,
        "min_samples_leaf": 1,
        "max_features": 1.0,
        "n_jobs": 1,
        "random_state": 0,
    }
    assert isinstance(out["max_features"], float)


def test_coerce_params_from_cli_strings() -> None:
    out = coerce_params(
        RandomForest, {"n_estimators": "30", "max_depth": "none", "max_features": "5e-1"}
    )
    assert (out["n_estimators"], out["max_depth"], out["max_features"]) == (30, None, 0.5)
    assert coerce_params(_Stub, {"on": "No", "kind": "b"}) == {
        "kind": "b",
        "on": False,
        "rate": 0.5,
    }
    with pytest.raises(InvalidInput, match=r"^hyperparameter 'n_estimators'") as e:
        coerce_params(RandomForest, {"n_estimators": "many"})
    assert e.value.message.endswith("got 'many' (str)")
    with pytest.raises(InvalidInput, match=r"must be a boolean; got 'maybe' \(str\)$"):
        coerce_params(_Stub, {"on": "maybe"})
    with pytest.raises(InvalidInput, match=r"^unknown hyperparameter 'depth'"):
        coerce_params(RandomForest, {"depth": "3"})


def test_register_and_lazy_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_CLASSES", {})
    monkeypatch.setattr(registry, "_LAZY", {})
    register(_Stub)
    register(_Stub)  # idempotent

    class Other(_Stub):
        pass

    with pytest.raises(ValueError, match=r"^algorithm name 'stub' is taken by _Stub$"):
        register(Other)
    register_lazy("linear", "openmaas.ml.catalog.linear:Linear")
    register_lazy("bad", "openmaas.ml.catalog.linear:Linear")
    assert algorithm_names() == ["bad", "linear", "stub"]
    assert get_algorithm("linear").__name__ == "Linear"
    assert registry._LAZY == {"bad": "openmaas.ml.catalog.linear:Linear"}
    with pytest.raises(ValueError, match=r"is not an Algorithm named 'bad'$"):
        get_algorithm("bad")
    with pytest.raises(ValueError, match=r"^lazy target must look like"):
        register_lazy("x", "openmaas.ml.catalog.linear.Linear")


# --- preprocessing ---------------------------------------------------------------------

COLUMNS = [
    ("x", "numeric"),
    ("flag", "boolean"),
    ("color", "categorical"),
    ("when", "datetime"),
    ("note", "text"),
]


def _frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """A frame with the dtypes our Parquet files read back as (via pyarrow)."""
    rng = np.random.default_rng(seed)
    start = dt.datetime(2021, 3, 1, tzinfo=dt.UTC)
    table = pa.table(
        {
            "x": pa.array(
                [None if i % 7 == 3 else float(v) for i, v in enumerate(rng.normal(10, 2, n))]
            ),
            "flag": pa.array(
                [None if i % 9 == 4 else bool(v) for i, v in enumerate(rng.integers(0, 2, n))]
            ),
            "color": pa.array(
                [None if i % 11 == 5 else "rgb"[v] for i, v in enumerate(rng.integers(0, 3, n))]
            ),
            "when": pa.array(
                [start + dt.timedelta(hours=int(h)) for h in rng.integers(0, 5000, n)],
                pa.timestamp("us", tz="UTC"),
            ),
            "note": pa.array([" ".join(["word"] * int(k)) for k in rng.integers(0, 4, n)]),
            "target": pa.array(rng.integers(0, 2, n)),
        }
    )
    return table.to_pandas()


def test_numeric_scaling_is_fitted_on_training_rows_only() -> None:
    train, test = _frame(60, seed=0), _frame(20, seed=1)
    test["x"] = test["x"] + 100.0  # a leak would move the mean
    prep = make_preprocessor([("x", "numeric")], "onehot").fit(train)
    out = prep.transform(test)
    x = train["x"].to_numpy(dtype=float)
    mean = np.nanmean(np.where(np.isnan(x), np.nanmedian(x), x))
    std = np.std(np.where(np.isnan(x), np.nanmedian(x), x))
    row = test["x"].notna().to_numpy()
    np.testing.assert_allclose(out[row, 0], (test["x"][row] - mean) / std)
    np.testing.assert_allclose(out[~row, 0], (np.nanmedian(x) - mean) / std)
    assert list(prep.get_feature_names_out()) == ["numeric__x", "numeric__missingindicator_x"]


def test_unseen_and_missing_categories() -> None:
    train = pd.DataFrame({"c": pd.Series(["a", "b", "b", None], dtype="str")})
    test = pd.DataFrame({"c": pd.Series(["b", "zzz", None], dtype="str")})
    onehot = make_preprocessor([("c", "categorical")], "onehot").fit(train)
    # missing -> most frequent ('b'); unseen -> no column set
    np.testing.assert_array_equal(onehot.transform(test), [[0, 1], [0, 0], [0, 1]])
    ordinal = make_preprocessor([("c", "categorical")], "ordinal").fit(train)
    np.testing.assert_array_equal(ordinal.transform(test), [[2], [0], [0]])
    assert (ordinal.categorical_features_, ordinal.cardinalities_) == ([0], [3])


def test_integer_ids_as_categories_and_rare_values() -> None:
    train = pd.DataFrame({"id": [1, 1, 1, 2, 2, 2, 3]})
    prep = make_preprocessor([("id", "categorical")], "native", min_frequency=2).fit(train)
    np.testing.assert_array_equal(
        prep.transform(pd.DataFrame({"id": [1, 2, 3, 4]}))[:, 0], [1, 2, 3, 0]
    )  # 3: the code of rare values; 4: unseen
    assert prep.cardinalities_ == [4]


def test_datetime_features_use_the_wall_clock_of_the_time_zone() -> None:
    when = pd.Series(pd.to_datetime(["2024-02-29 23:30", None]).tz_localize("Europe/Paris"))
    days = pd.DataFrame({"d": [dt.date(1970, 1, 2), None]})  # date32 reads back as objects
    prep = make_preprocessor([("t", "datetime"), ("d", "datetime")], "native")
    out = prep.fit(pd.DataFrame({"t": when, "d": days["d"]})).transform(
        pd.DataFrame({"t": when, "d": days["d"]})
    )
    utc_days = (pd.Timestamp("2024-02-29 22:30", tz="UTC") - pd.Timestamp(0, tz="UTC")).days
    np.testing.assert_allclose(
        out[0], [2024, 2, 29, 3, 23, utc_days + 22.5 / 24, 1970, 1, 2, 4, 0, 1.0]
    )
    assert np.isnan(out[1]).all()
    assert list(prep.get_feature_names_out())[:6] == [
        "datetime__t_year",
        "datetime__t_month",
        "datetime__t_day",
        "datetime__t_day_of_week",
        "datetime__t_hour",
        "datetime__t_days",
    ]


def test_every_kind_from_parquet_dtypes() -> None:
    df = _frame()
    for mode, width in [("onehot", 15), ("ordinal", 13), ("native", 11)]:
        prep = make_preprocessor(COLUMNS, mode).fit(df)  # "target" is not a feature
        out = prep.transform(df)
        assert out.shape == (60, width) and out.dtype == np.float64
        assert np.isnan(out).any() == (mode == "native")
    assert prep.categorical_features_ == [10] and prep.cardinalities_ == [4]  # r, g, b + 0
    np.testing.assert_array_equal(out[:, 9], df["note"].str.count("word"))  # "note" words


@pytest.mark.parametrize("rows", [7, 8, 401])
def test_median_imputer_matches_scikit_learn(rows: int) -> None:
    from sklearn.impute import SimpleImputer

    rng = np.random.default_rng(rows)
    X = rng.normal(size=(rows, 5))
    X[rng.random(X.shape) < 0.3] = np.nan
    X[:, 3] = np.nan  # an all-missing column
    for data in (X, np.nan_to_num(X[:, :3])):  # with missing values, and none
        for keep in (True, False):  # an all-missing column's median: 0, or NaN (dropped)
            options = {"strategy": "median", "add_indicator": True, "keep_empty_features": keep}
            ours = MedianImputer(**options).fit(data)
            theirs = SimpleImputer(**options).fit(data)
            np.testing.assert_array_equal(ours.statistics_, theirs.statistics_)
            if keep:
                np.testing.assert_array_equal(ours.transform(data), theirs.transform(data))


def test_numbers_convert_to_float_directly_and_the_same_as_nullable_ones() -> None:
    frame = pd.DataFrame(
        {
            "f": [1.5, np.inf, np.nan, -np.inf],
            "i": np.array([1, 2, 3, 4], dtype=np.int64),
            "b": [True, False, True, True],
            "nullable": pd.array([1, None, 3, 4], dtype="Int64"),
            "objects": pd.Series([1.5, None, 2, 7], dtype=object),
        }
    )
    out = ToFloat().fit(frame).transform(frame)
    expected = [[1.5, 1, 1, 1, 1.5], [np.nan, 2, 0, np.nan, np.nan]]
    np.testing.assert_array_equal(out[:2], expected)
    assert np.isnan(out[2:, 0]).all() and out.dtype == np.float64
    assert not np.shares_memory(out, frame["f"].to_numpy())  # the frame is never written


def test_a_saved_preprocessor_with_the_median_imputer_loads(tmp_path: Path) -> None:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X.iloc[:5, 0] = np.nan
    pipe = make_pipeline(get_algorithm("linear")(), [(c, "numeric") for c in X.columns])
    fit_pipeline(pipe, X, y)
    save_pipeline(pipe, tmp_path / "p")
    loaded = load_pipeline(tmp_path / "p")
    np.testing.assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))


def test_preprocessor_errors() -> None:
    with pytest.raises(InvalidInput, match=r"^the data has no column 'y'$"):
        make_preprocessor([("y", "numeric")], "onehot").fit(_frame())
    with pytest.raises(InvalidInput, match=r"^column 'x' has unknown kind 'image'; valid: "):
        make_preprocessor([("x", "image")], "onehot").fit(_frame())
    with pytest.raises(InvalidInput, match=r"^there are no feature columns to train on$"):
        make_preprocessor([], "onehot").fit(_frame())


# --- files -----------------------------------------------------------------------------


def _targets(task_type: str) -> tuple[np.ndarray, np.ndarray]:
    X, y = load_diabetes(return_X_y=True)
    X, y = X[:120], y[:120]
    target = {
        "binary": np.where(y > 150, "high", "low"),
        "multiclass": np.digitize(y, [100, 200]),
        "regression": y,
        "multitarget": np.c_[y, -y],
    }[task_type]
    return X, target


@pytest.mark.parametrize(
    ("name", "task_type"),
    [(n, t) for n in sorted(TEST_PARAMS) for t in sorted(get_algorithm(n).task_types)],
)
def test_save_load_round_trip(name: str, task_type: str, tmp_path: Path) -> None:
    X, y = _targets(task_type)
    model = get_algorithm(name)(task_type=task_type, **TEST_PARAMS[name]).fit(X, y)
    model.save(tmp_path)
    loaded = get_algorithm(name).load(tmp_path)
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    if task_type in ("binary", "multiclass"):
        np.testing.assert_array_equal(loaded.classes_, model.classes_)
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert not any(p.suffix in (".pkl", ".pickle", ".joblib") for p in tmp_path.iterdir())


@pytest.mark.parametrize("name", sorted(TEST_PARAMS))
def test_pipeline_round_trip_on_a_dataframe(name: str, tmp_path: Path) -> None:
    df = _frame(80)
    model = get_algorithm(name)(task_type="binary", **TEST_PARAMS[name])
    pipe = fit_pipeline(
        make_pipeline(model, COLUMNS),
        df[:60],
        df["target"][:60],
        X_valid=df[60:],
        y_valid=df["target"][60:],
    )
    save_pipeline(pipe, tmp_path)
    loaded = load_pipeline(tmp_path)
    unseen = df[60:].assign(color="purple")
    np.testing.assert_array_equal(loaded.predict_proba(unseen), pipe.predict_proba(unseen))
    assert json.loads((tmp_path / "pipeline.json").read_text())["algorithm"] == name


def test_load_refuses_types_outside_the_allowlist(tmp_path: Path) -> None:
    RandomForest(n_estimators=2).fit([[0.0], [1.0]], [0, 1]).save(tmp_path)
    with pytest.raises(
        InvalidFile,
        match=r"^model\.skops holds types outside the allowlist: sklearn\.tree\._tree\.Tree$",
    ):
        load_skops(tmp_path / "model.skops", {"openmaas.ml.catalog.forest.RandomForest"})
    with pytest.raises(InvalidFile, match=r"holds algorithm 'random_forest', not 'linear'$"):
        get_algorithm("linear").load(tmp_path)


# --- LightGBM --------------------------------------------------------------------------


def _cancer() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    return X, y


def test_lightgbm_equals_a_plain_lightgbm_script() -> None:
    X, y = _cancer()
    train, test = slice(0, 400), slice(400, None)
    model = LightGBM(n_estimators=30, num_leaves=15).fit(X[train], y[train])
    params = LightGBM(n_estimators=30, num_leaves=15).booster_params(n_classes=2)
    plain = lgb.train(params, lgb.Dataset(X[train], y[train]), num_boost_round=30)
    expected = plain.predict(X[test])
    np.testing.assert_allclose(model.predict_proba(X[test])[:, 1], expected, rtol=0, atol=1e-12)
    plain_accuracy = np.mean((expected > 0.5) == y[test])
    assert abs(model.score(X[test], y[test]) - plain_accuracy) < 1e-6
    assert params["num_threads"] == 1 and params["deterministic"]


def test_lightgbm_model_text_is_written_once_and_unchanged(tmp_path: Path) -> None:
    """save and checkpoints take the model text from a file LightGBM writes (its
    model_to_string serialises big models twice): the same text."""
    from sklearn.datasets import make_classification

    from openmaas.ml.catalog._gbdt_rounds import model_text

    X, y = make_classification(n_samples=3000, n_features=10, random_state=0)
    model = LightGBM(n_estimators=600, num_leaves=63, min_child_samples=5).fit(X, y)
    text = model.booster_.model_to_string()
    assert len(text) > 1 << 20  # past model_to_string's first buffer
    assert model_text(model.booster_) == text
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "model.txt").read_text() == text
    np.testing.assert_array_equal(
        LightGBM.load(tmp_path / "m").predict_proba(X), model.predict_proba(X)
    )


def _validation_cases() -> dict[str, tuple[np.ndarray, np.ndarray, dict[str, Any]]]:
    from sklearn.datasets import make_classification

    rng = np.random.default_rng(0)
    X, y = make_classification(n_samples=3000, n_features=8, random_state=0)
    holes = X.copy()
    holes[rng.random(X.shape) < 0.1] = np.nan
    holes[rng.random(X.shape) < 0.1] = 0.0
    Xm, ym = make_classification(
        n_samples=3000, n_features=8, n_informative=5, n_classes=4, random_state=0
    )
    Xr, yr = load_diabetes(return_X_y=True)
    return {
        "binary": (X, y, {}),
        "missing values and zeros": (holes, y, {}),
        "multiclass": (Xm, ym, {"task_type": "multiclass"}),
        "regression": (Xr, yr, {"task_type": "regression"}),
        "sampled, in segments": (X, y, {"subsample": 0.7, "colsample_bytree": 0.8}),
    }


@pytest.mark.parametrize("early_stopping", [None, 5])
@pytest.mark.parametrize("case", list(_validation_cases()))
def test_lightgbm_validation_output_is_what_predicting_gives(
    case: str, early_stopping: int | None
) -> None:
    """The engine takes out-of-fold predictions from ``validation_output_``: it must
    equal predicting X_valid bit for bit, also when early stopping dropped rounds."""
    X, y, params = _validation_cases()[case]
    cut = len(X) * 4 // 5
    model = LightGBM(
        n_estimators=120, learning_rate=0.3, checkpoint_every=25,
        early_stopping_rounds=early_stopping, **params,
    ).fit(X[:cut], y[:cut], X_valid=X[cut:], y_valid=y[cut:])  # fmt: skip
    if early_stopping:
        assert model.best_iteration_ < 120
    expected = model.predict(X[cut:]) if case == "regression" else model.predict_proba(X[cut:])
    assert np.array_equal(model.validation_output_, expected)

    child = LightGBM(n_estimators=20, early_stopping_rounds=early_stopping, **params).fit(
        X[:cut], y[:cut], X_valid=X[cut:], y_valid=y[cut:], init_model=model
    )
    again = child.predict(X[cut:]) if case == "regression" else child.predict_proba(X[cut:])
    assert np.array_equal(child.validation_output_, again)


def test_lightgbm_validation_output_needs_the_kept_round() -> None:
    """Resumed after the best round, the fit no longer has its scores: no output."""
    X, y = _cancer()
    params = {"n_estimators": 60, "learning_rate": 0.5, "checkpoint_every": 10}
    killed = _Recorder(stop_at=45)
    with pytest.raises(KeyboardInterrupt):
        LightGBM(**params, early_stopping_rounds=40).fit(
            X[:300], y[:300], X_valid=X[300:], y_valid=y[300:], callbacks=killed
        )
    resumed = LightGBM(**params, early_stopping_rounds=40).fit(
        X[:300], y[:300], X_valid=X[300:], y_valid=y[300:],
        callbacks=_Recorder(resume=killed.checkpoints[-1][1]),
    )  # fmt: skip
    assert resumed.best_iteration_ < 40
    assert not hasattr(resumed, "validation_output_")
    assert not hasattr(LightGBM(n_estimators=5).fit(X, y), "validation_output_")


class _Recorder(TrainingCallbacks):
    def __init__(self, stop_at: int | None = None, resume: bytes | None = None) -> None:
        self.epochs: list[tuple[int, dict[str, float]]] = []
        self.checkpoints: list[tuple[int, bytes]] = []
        self.stop_at, self.resume = stop_at, resume

    def on_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        if epoch == self.stop_at:
            raise KeyboardInterrupt  # the worker is killed
        self.epochs.append((epoch, metrics))

    def checkpoint(self, epoch: int, state: bytes) -> None:
        self.checkpoints.append((epoch, state))

    def resume_state(self) -> bytes | None:
        return self.resume


def test_lightgbm_early_stopping_and_learning_curve() -> None:
    X, y = _cancer()
    calls = _Recorder()
    model = LightGBM(n_estimators=500, learning_rate=0.3, early_stopping_rounds=5).fit(
        X[:300], y[:300], X_valid=X[300:], y_valid=y[300:], callbacks=calls
    )
    curve = model.learning_curve_.values
    ran = len(curve["valid_loss"])
    assert ran < 500 and len(curve["train_loss"]) == ran == len(calls.epochs)
    assert model.best_iteration_ == int(np.argmin(curve["valid_loss"])) + 1 == ran - 5
    assert calls.epochs[0] == (
        1,
        {"train_loss": curve["train_loss"][0], "valid_loss": curve["valid_loss"][0]},
    )
    assert model.booster_.current_iteration() == model.best_iteration_  # later trees dropped
    quiet = LightGBM(n_estimators=12).fit(X, y)
    assert list(quiet.learning_curve_.values) == ["train_loss"]
    assert quiet.best_iteration_ == 12


@pytest.mark.parametrize("with_valid", [False, True])
def test_lightgbm_resumes_from_its_last_checkpoint(with_valid: bool) -> None:
    X, y = load_diabetes(return_X_y=True)
    valid = {"X_valid": X[300:], "y_valid": y[300:]} if with_valid else {}
    params = {
        "task_type": "regression",
        "n_estimators": 40,
        "checkpoint_every": 10,
        "subsample": 0.8,
        "early_stopping_rounds": 25,
    }
    whole = LightGBM(**params).fit(X[:300], y[:300], **valid)

    killed = _Recorder(stop_at=25)
    with pytest.raises(KeyboardInterrupt):
        LightGBM(**params).fit(X[:300], y[:300], callbacks=killed, **valid)
    assert [epoch for epoch, _ in killed.checkpoints] == [10, 20]
    resumed_calls = _Recorder(resume=killed.checkpoints[-1][1])
    resumed = LightGBM(**params).fit(X[:300], y[:300], callbacks=resumed_calls, **valid)

    assert [e for e, _ in resumed_calls.epochs] == list(range(21, 41))
    expected_rounds = whole.best_iteration_ if with_valid else 40
    assert resumed.booster_.current_iteration() == expected_rounds
    assert resumed.best_iteration_ == whole.best_iteration_
    assert resumed.learning_curve_ == whole.learning_curve_
    np.testing.assert_array_equal(resumed.predict(X), whole.predict(X))


def test_lightgbm_warm_starts_from_a_parent() -> None:
    X, y = _cancer()
    parent = LightGBM(n_estimators=20).fit(X[:300], y[:300])
    child = LightGBM(n_estimators=10).fit(X[:300], y[:300], init_model=parent)
    straight = LightGBM(n_estimators=30).fit(X[:300], y[:300])
    assert child.booster_.current_iteration() == 30
    assert parent.booster_.current_iteration() == 20  # the parent is left alone
    np.testing.assert_allclose(child.predict_proba(X), straight.predict_proba(X), rtol=1e-6)
    with pytest.raises(InvalidInput, match=r"^target label 7 is not among the classes \[0, 1\]"):
        LightGBM(n_estimators=2).fit(X[:10], np.r_[y[:9], 7], init_model=parent)
    with pytest.raises(InvalidInput, match=r"^the parent model was trained on other features"):
        LightGBM(n_estimators=2).fit(X[:10, :5], y[:10], init_model=parent)


def test_pipeline_warm_start_reuses_the_parent_preprocessor() -> None:
    df = _frame(80)
    parent = fit_pipeline(make_pipeline(LightGBM(n_estimators=5), COLUMNS), df, df["target"])
    other = _frame(80, seed=3)
    child = fit_pipeline(
        make_pipeline(LightGBM(n_estimators=5), COLUMNS), other, other["target"], parent=parent
    )
    assert child.steps[0][1] is parent.steps[0][1]
    assert child.steps[1][1].booster_.current_iteration() == 10


def test_lightgbm_target_faults() -> None:
    X, y = load_diabetes(return_X_y=True)
    y = y.copy()
    y[[3, 8]] = [np.nan, np.inf]
    with pytest.raises(
        InvalidInput,
        match=r"^the target has 2 missing or infinite values "
        r"\(first at row 3\); drop or fill them$",
    ):
        LightGBM(task_type="regression").fit(X, y)
    with pytest.raises(InvalidInput, match=r"^target values reach 1e\+200, beyond the float32"):
        LightGBM(task_type="regression").fit(X, np.full(len(X), 1e200))


class _Scores:
    """A booster whose validation scores have become NaN."""

    def eval_train(self, feval: Any) -> list[Any]:
        return [("train", *feval(np.array([0.5, 1.5]), _Labels([0.0, 2.0])))]

    def eval_valid(self, feval: Any) -> list[Any]:
        return [("valid", *feval(np.array([np.nan, 1.0]), _Labels([0.0, 1.0])))]


class _Labels:
    def __init__(self, label: list[float]) -> None:
        self.label = np.asarray(label)

    def get_label(self) -> np.ndarray:
        return self.label


def test_lightgbm_stops_on_a_non_finite_loss() -> None:
    rounds = Rounds(LightGBM(), TrainingCallbacks(), has_valid=True, first=0, total=10, metric="l2")
    env = lgb.callback.CallbackEnv(
        model=_Scores(),
        params={},
        iteration=6,
        begin_iteration=0,
        end_iteration=10,
        evaluation_result_list=[],
    )
    with pytest.raises(
        InvalidInput,
        match=r"^training diverged at round 7: valid l2 is nan; "
        "try a lower learning_rate or rescale the target$",
    ):
        rounds(env)


def test_lightgbm_is_deterministic_with_a_seed() -> None:
    X, y = _cancer()
    a, b, c = (
        LightGBM(n_estimators=15, subsample=0.7, colsample_bytree=0.5, random_state=s)
        .fit(X, y)
        .predict_proba(X)
        for s in (1, 1, 2)
    )
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
