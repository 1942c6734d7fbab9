"""The input encoding in front of every model, fitted inside each fold.

:func:`make_pipeline` puts a :class:`TabularPreprocessor` for the algorithm's
``preprocessing`` mode in front of it; everything the preprocessor learns
(medians, scales, category lists) comes from the rows it is fitted on, so
fitting the pipeline on a fold's training part never sees its test part.

Per column kind (input: a pandas DataFrame as read from our Parquet files):

============  ===============================================  ======================
kind          ``onehot`` / ``ordinal``                         ``native`` (LightGBM)
============  ===============================================  ======================
numeric       median impute + missing indicator, standardise   float, NaN kept
boolean       0/1, most-frequent impute + missing indicator    0/1, NaN kept
datetime      year, month, day, day_of_week, hour and days     the same six, NaN kept
              since 1970 (wall clock in the column's time
              zone), then as numeric
text          length in characters and in words, then as       the two counts, NaN
              numeric (no vocabulary: cheap and leak-free)     kept
categorical   ``onehot``: most-frequent impute, one column     codes as ``ordinal``
              per value; rare values (``min_frequency``,
              ``max_categories``) share one, which unseen
              values join (all zeros if there is none).
              ``ordinal``: codes 1..n (rare values share
              one), 0 for missing or unseen values
============  ===============================================  ======================

Values are compared as strings, so an integer id forced to ``categorical``
works. Categorical code columns come last; after ``fit``,
``categorical_features_`` lists their output indices and ``cardinalities_``
the number of codes each may take (0 included), for embeddings and LightGBM.
The output is a float64 array.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from openmaas.errors import InvalidInput
from openmaas.ml.catalog.base import Algorithm, Preprocessing, TrainingCallbacks

__all__ = [
    "DatetimeFeatures",
    "MedianImputer",
    "ShiftCodes",
    "TabularPreprocessor",
    "TextFeatures",
    "ToCategory",
    "ToFloat",
    "fit_pipeline",
    "make_pipeline",
    "make_preprocessor",
]

_KINDS = ("numeric", "boolean", "datetime", "text", "categorical")  # output order
_MODES = ("onehot", "ordinal", "native", "none")
_DATETIME_PARTS = ("year", "month", "day", "day_of_week", "hour")


class _Columnwise(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """A stateless DataFrame → float array transformer, one or more outputs per column."""

    suffixes: tuple[str, ...] = ("",)

    def fit(self, X: pd.DataFrame, y: Any = None) -> Self:
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def _column(self, s: pd.Series) -> list[np.ndarray]:
        raise NotImplementedError

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self)
        out = [part for name in X.columns for part in self._column(X[name])]
        return np.column_stack(out).astype(np.float64) if out else np.empty((len(X), 0))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = self.feature_names_in_ if input_features is None else input_features
        return np.asarray([f"{n}{s}" for n in names for s in self.suffixes], dtype=object)


class ToFloat(_Columnwise):
    """Numbers and booleans as float64; missing and ±inf become NaN."""

    def _column(self, s: pd.Series) -> list[np.ndarray]:
        if isinstance(s.dtype, np.dtype) and s.dtype.kind in "fiub":
            # plain numpy columns convert directly: the nullable Float64 detour costs
            # a copy and a mask per column, every fit and every transform
            values = s.to_numpy(dtype=np.float64, copy=True)
        else:
            values = s.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        values[~np.isfinite(values)] = np.nan
        return [values]


class MedianImputer(SimpleImputer):  # type: ignore[misc]
    """``SimpleImputer`` whose ``median`` strategy computes with :func:`numpy.nanmedian`.

    scikit-learn computes medians with ``numpy.ma.median``, a full sort of every
    column (about 7x slower than ``nanmedian``'s partition on 40,000 rows); the
    values are the same. Every other strategy, the missing indicator and
    ``transform`` are scikit-learn's.
    """

    def _dense_fit(
        self, X: np.ndarray, strategy: str, missing_values: Any, fill_value: Any
    ) -> np.ndarray:
        if strategy != "median" or X.dtype.kind != "f" or not _is_nan(missing_values):
            return super()._dense_fit(X, strategy, missing_values, fill_value)
        missing = np.isnan(X)
        self._fit_indicator(missing)
        if not missing.any():
            return np.median(X, axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column
            median = np.nanmedian(X, axis=0)
        median[np.isnan(median)] = 0 if self.keep_empty_features else np.nan
        return median


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and np.isnan(value)


class DatetimeFeatures(_Columnwise):
    """Year, month, day, day of week, hour and days since 1970-01-01 (UTC) per column."""

    suffixes = tuple(f"_{p}" for p in (*_DATETIME_PARTS, "days"))

    def _column(self, s: pd.Series) -> list[np.ndarray]:
        if not pd.api.types.is_datetime64_any_dtype(s.dtype):
            s = pd.to_datetime(s, errors="coerce")
        epoch = pd.Timestamp("1970-01-01", tz="UTC" if s.dt.tz is not None else None)
        parts = [getattr(s.dt, p).astype("Float64") for p in _DATETIME_PARTS]
        parts.append((s - epoch).dt.total_seconds().astype("Float64") / 86400.0)
        return [p.to_numpy(dtype=np.float64, na_value=np.nan) for p in parts]


class TextFeatures(_Columnwise):
    """Length in characters and in whitespace-separated words per column."""

    suffixes = ("_chars", "_words")

    def _column(self, s: pd.Series) -> list[np.ndarray]:
        text = s.astype("string")
        chars = text.str.len().astype("Float64")
        words = text.str.split().str.len().astype("Float64")
        return [v.to_numpy(dtype=np.float64, na_value=np.nan) for v in (chars, words)]


class ToCategory(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Values as strings in an object array; missing values become NaN."""

    def fit(self, X: pd.DataFrame, y: Any = None) -> Self:
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self)
        out = np.empty(X.shape, dtype=object)
        for j, name in enumerate(X.columns):
            s = X[name].astype(object)
            missing = s.isna().to_numpy()
            out[:, j] = np.where(missing, np.nan, s.map(str).to_numpy(dtype=object))
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return self.feature_names_in_ if input_features is None else np.asarray(input_features)


class ShiftCodes(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Ordinal codes + 1, so the encoder's -1 (missing or unseen) becomes 0."""

    def fit(self, X: Any, y: Any = None) -> Self:
        self.n_features_in_ = np.shape(X)[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) + 1.0

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(input_features, dtype=object)


def _numeric_steps(first: TransformerMixin, mode: str, strategy: str = "median") -> Any:
    if mode == "native":
        return first
    kind = MedianImputer if strategy == "median" else SimpleImputer
    imputer = kind(strategy=strategy, add_indicator=True, keep_empty_features=True)
    steps = [("convert", first), ("impute", imputer)]
    if strategy == "median":
        steps.append(("scale", StandardScaler()))
    return Pipeline(steps)


class TabularPreprocessor(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Encode a DataFrame's feature ``columns`` (``(name, kind)`` pairs) for ``mode``.

    Columns not listed (target, ids) are dropped. ``max_categories`` and
    ``min_frequency`` bound each categorical column's encoding (rarer values
    share one column or code, as in scikit-learn's encoders).
    """

    def __init__(
        self,
        columns: Sequence[tuple[str, str]] = (),
        mode: Preprocessing = "onehot",
        max_categories: int | None = 64,
        min_frequency: int | float | None = None,
    ) -> None:
        self.columns = columns
        self.mode = mode
        self.max_categories = max_categories
        self.min_frequency = min_frequency

    def _transformers(self) -> list[tuple[str, Any, list[str]]]:
        by_kind: dict[str, list[str]] = {k: [] for k in _KINDS}
        for name, kind in self.columns:
            if kind not in by_kind:
                raise InvalidInput(
                    f"column {name!r} has unknown kind {kind!r}; valid: {', '.join(_KINDS)}",
                    details={"column": name, "kind": kind},
                )
            by_kind[kind].append(name)
        mode = self.mode
        limits = {"max_categories": self.max_categories, "min_frequency": self.min_frequency}
        if mode == "onehot":
            categorical: Any = Pipeline(
                [
                    ("convert", ToCategory()),
                    ("impute", SimpleImputer(strategy="most_frequent")),
                    (
                        "encode",
                        OneHotEncoder(
                            handle_unknown="infrequent_if_exist", sparse_output=False, **limits
                        ),
                    ),
                ]
            )
        else:
            categorical = Pipeline(
                [
                    ("convert", ToCategory()),
                    (
                        "encode",
                        OrdinalEncoder(
                            handle_unknown="use_encoded_value",
                            unknown_value=-1,
                            encoded_missing_value=-1,
                            **limits,
                        ),
                    ),
                    ("shift", ShiftCodes()),
                ]
            )
        steps = {
            "numeric": _numeric_steps(ToFloat(), mode),
            "boolean": _numeric_steps(ToFloat(), mode, strategy="most_frequent"),
            "datetime": _numeric_steps(DatetimeFeatures(), mode),
            "text": _numeric_steps(TextFeatures(), mode),
            "categorical": categorical,
        }
        return [(kind, steps[kind], by_kind[kind]) for kind in _KINDS if by_kind[kind]]

    def fit(self, X: pd.DataFrame, y: Any = None) -> Self:
        if self.mode not in _MODES[:3]:
            raise InvalidInput(
                f"preprocessing mode {self.mode!r} is not one of onehot, ordinal, native"
            )
        transformers = self._transformers()
        if not transformers:
            raise InvalidInput("there are no feature columns to train on")
        missing = [n for n, _ in self.columns if n not in X.columns]
        if missing:
            raise InvalidInput(
                f"the data has no column {missing[0]!r}", details={"column": missing[0]}
            )
        self.transformer_ = ColumnTransformer(transformers, remainder="drop")
        self.transformer_.fit(X)
        self.n_features_out_ = sum(
            s.stop - s.start for s in self.transformer_.output_indices_.values()
        )
        self.categorical_features_: list[int] = []
        self.cardinalities_: list[int] = []
        if self.mode != "onehot" and "categorical" in self.transformer_.named_transformers_:
            block = self.transformer_.output_indices_["categorical"]
            self.categorical_features_ = list(range(block.start, block.stop))
            encoder = self.transformer_.named_transformers_["categorical"]["encode"]
            self.cardinalities_ = _cardinalities(encoder)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self)
        return np.asarray(self.transformer_.transform(X), dtype=np.float64)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self)
        return np.asarray(self.transformer_.get_feature_names_out(), dtype=object)


def _cardinalities(encoder: OrdinalEncoder) -> list[int]:
    out = []
    for i, cats in enumerate(encoder.categories_):
        known = sum(1 for c in cats if not (isinstance(c, float) and np.isnan(c)))
        rare = encoder.infrequent_categories_[i] if encoder._infrequent_enabled else None
        if rare is not None:
            known = known - len(rare) + 1
        out.append(known + 1)  # code 0: missing or unseen
    return out


def _pairs(columns: Sequence[Any]) -> tuple[tuple[str, str], ...]:
    return tuple(
        (str(c[0]), str(c[1])) if isinstance(c, tuple | list) else (str(c.name), str(c.kind))
        for c in columns
    )


def make_preprocessor(
    columns: Sequence[Any], mode: Preprocessing, **options: Any
) -> TabularPreprocessor | str:
    """A preprocessor for feature ``columns`` (``ColumnSchema`` s or ``(name, kind)`` pairs).

    ``mode="none"`` gives ``"passthrough"`` (the algorithm reads raw input).
    """
    if mode == "none":
        return "passthrough"
    return TabularPreprocessor(_pairs(columns), mode, **options)


def make_pipeline(algorithm: Algorithm, columns: Sequence[Any]) -> Pipeline:
    """``Pipeline([("prep", preprocessor), ("model", algorithm)])``, unfitted."""
    prep = make_preprocessor(columns, algorithm.preprocessing)
    return Pipeline([("prep", prep), ("model", algorithm)])


def fit_pipeline(
    pipe: Pipeline,
    X: pd.DataFrame,
    y: Any,
    *,
    X_valid: pd.DataFrame | None = None,
    y_valid: Any = None,
    callbacks: TrainingCallbacks | None = None,
    parent: Pipeline | None = None,
) -> Pipeline:
    """Fit ``pipe`` on one fold's training rows, as the engine does.

    The preprocessor is fitted on ``X`` only, then transforms ``X_valid``.
    Iterative models get the validation part and ``callbacks``; ``ordinal`` and
    ``native`` models get ``categorical_features`` and ``cardinalities``. With a
    fitted ``parent`` pipeline the model warm-starts from the parent's model and
    reuses its fitted preprocessor, so codes and scales mean what they meant.
    """
    prep, model = pipe.steps[0][1], pipe.steps[-1][1]
    if parent is not None:
        prep = parent.steps[0][1]
        pipe.steps[0] = (pipe.steps[0][0], prep)
    elif prep != "passthrough":
        prep.fit(X)
    transform = (lambda d: d) if prep == "passthrough" else prep.transform
    fit_params: dict[str, Any] = {}
    if model.iterative:
        fit_params["callbacks"] = callbacks
        if X_valid is not None:
            fit_params.update(X_valid=transform(X_valid), y_valid=y_valid)
    if model.preprocessing in ("ordinal", "native"):
        fit_params.update(
            categorical_features=prep.categorical_features_, cardinalities=prep.cardinalities_
        )
    if parent is not None:
        fit_params["init_model"] = parent.steps[-1][1]
    model.fit(transform(X), y, **fit_params)
    return pipe
