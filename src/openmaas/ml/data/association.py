"""How strongly each column is associated with a target column.

Numeric column and numeric target: Pearson correlation over the reservoir
(pairwise-complete rows). Any other pair: mutual information in nats from
scikit-learn (``mutual_info_regression`` for a numeric or datetime target,
``mutual_info_classif`` otherwise) over the smaller profile sample, because the
nearest-neighbour estimator costs far more per row. Categorical and boolean
values enter as discrete codes, datetimes as seconds since the epoch. Free-text
columns get no value: every distinct string would look informative.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from openmaas.ml.data.accumulators import finite
from openmaas.ml.data.schema import ColumnSchema

_DISCRETE = ("categorical", "boolean", "text")
_MIN_ROWS = 5


def associations(
    columns: list[ColumnSchema],
    target: str,
    reservoir: pa.Table | None,
    sample: pa.Table | None,
    *,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """``{column: {"method", "value"}}`` for every column but the target."""
    by_name = {c.name: c for c in columns}
    t_kind = by_name[target].kind
    out: dict[str, dict[str, Any]] = {}
    for c in columns:
        if c.name == target:
            continue
        if c.kind == "numeric" and t_kind == "numeric":
            value = None if reservoir is None else _pearson(reservoir[c.name], reservoir[target])
            out[c.name] = {"method": "pearson", "value": value}
        elif c.kind == "text" or sample is None:
            out[c.name] = {"method": None, "value": None}
        else:
            value = _mutual_info(sample[c.name], c.kind, sample[target], t_kind, seed)
            out[c.name] = {"method": "mutual_info", "value": value}
    return out


def _as_float(col: pa.ChunkedArray) -> np.ndarray:
    """Values as float64 with NaN for missing (datetimes as epoch seconds)."""
    t = col.type
    if pa.types.is_timestamp(t):
        scale = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[t.unit]
        out = col.cast(pa.int64()).cast(pa.float64()).fill_null(np.nan).to_numpy() / scale
    elif pa.types.is_date(t):
        out = col.cast(pa.int32()).cast(pa.float64()).fill_null(np.nan).to_numpy() * 86400.0
    else:
        out = col.cast(pa.float64()).fill_null(np.nan).to_numpy()
    out = np.asarray(out, dtype=np.float64)
    return out


def _codes(col: pa.ChunkedArray) -> np.ndarray:
    """Discrete codes as float64 with NaN for missing."""
    enc = pc.dictionary_encode(col.combine_chunks())
    idx = enc.indices.cast(pa.float64()).fill_null(np.nan).to_numpy()
    return np.asarray(idx, dtype=np.float64)


def _pearson(x_col: pa.ChunkedArray, y_col: pa.ChunkedArray) -> float | None:
    x, y = _as_float(x_col), _as_float(y_col)
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    if x.size < 2:
        return None
    x, y = x - x.mean(), y - y.mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return finite(float((x * y).sum()) / den) if den > 0 else None


def _mutual_info(
    x_col: pa.ChunkedArray, x_kind: str, y_col: pa.ChunkedArray, y_kind: str, seed: int
) -> float | None:
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    x = _codes(x_col) if x_kind in _DISCRETE else _as_float(x_col)
    y = _codes(y_col) if y_kind in _DISCRETE else _as_float(y_col)
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    if x.size < _MIN_ROWS or np.unique(x).size < 2 or np.unique(y).size < 2:
        return None
    discrete_x = x_kind in _DISCRETE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if y_kind in _DISCRETE:
            mi = mutual_info_classif(
                x.reshape(-1, 1),
                y.astype(np.int64),
                discrete_features=discrete_x,
                random_state=seed,
            )
        else:
            mi = mutual_info_regression(
                x.reshape(-1, 1), y, discrete_features=discrete_x, random_state=seed
            )
    return finite(mi[0])
