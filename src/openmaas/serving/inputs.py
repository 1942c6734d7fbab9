"""Request bodies straight into a float matrix (or a DataFrame for pipelines).

Accepted bodies (JSON objects):

    {"records": [{"f0": 1.0, ...}, ...]}              also MLflow's "dataframe_records"
    {"columns": [...], "data": [[...], ...]}          also MLflow's {"dataframe_split": {...}}
    {"data": [[...], ...]}                            rows in signature order; also
                                                      "instances" / "inputs" (MLflow tensors)

Everything is checked against the signature; an error names the field and row.
No pandas per request unless the model is a pipeline (its preprocessing wants
typed columns).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd

from openmaas.errors import InvalidInput
from openmaas.ml.flavors.signature import Signature

MAX_DEPTH_HINT = "rows must be lists of values or objects of column -> value"


def parse_body(body: bytes) -> dict[str, Any]:
    if not body:
        raise InvalidInput("the request body is empty; send a JSON object")
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"the body is not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise InvalidInput('the body must be a JSON object, e.g. {"records": [...]}')
    return obj


def rows_of(obj: dict[str, Any], sig: Signature) -> tuple[list[Any], list[str] | None]:
    """The rows and, for columnar bodies, the column order they use."""
    if "dataframe_split" in obj:
        inner = obj["dataframe_split"]
        if not isinstance(inner, dict):
            raise InvalidInput("dataframe_split must be an object with columns and data")
        obj = inner
    for key in ("records", "dataframe_records"):
        if key in obj:
            rows = obj[key]
            if not isinstance(rows, list):
                raise InvalidInput(f"{key} must be a list of objects", details={"field": key})
            return rows, None
    for key in ("data", "instances", "inputs"):
        if key in obj:
            rows = obj[key]
            if not isinstance(rows, list):
                raise InvalidInput(f"{key} must be a list of rows", details={"field": key})
            columns = obj.get("columns")
            if columns is not None:
                if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
                    raise InvalidInput(
                        "columns must be a list of names", details={"field": "columns"}
                    )
                return rows, columns
            return rows, sig.names
    raise InvalidInput(
        "the body needs 'records', 'data' (with optional 'columns'), 'dataframe_split', "
        "'dataframe_records', 'instances' or 'inputs'"
    )


def to_matrix(obj: dict[str, Any], sig: Signature, max_rows: int) -> np.ndarray:
    """A float64 matrix in signature order; booleans become 0/1, null becomes NaN."""
    rows, columns = rows_of(obj, sig)
    n = len(rows)
    if n == 0:
        raise InvalidInput("the batch is empty: send at least one row")
    if n > max_rows:
        raise InvalidInput(
            f"the batch has {n} rows; the limit is {max_rows}", details={"limit": max_rows}
        )
    names = sig.names
    if columns is None:  # records
        return _records(rows, names)
    if columns is not names and columns != names:  # named columns in another order
        _check_columns(columns, names, sig.name_set)
    try:
        X = np.array(rows, dtype=np.float64)
    except (ValueError, TypeError):
        X = None
    if X is None or X.ndim != 2 or X.shape[1] != len(columns):
        _explain_rows(rows, columns)
    assert X is not None
    if columns != names:
        X = X[:, [columns.index(c) for c in names]]
    return X


def _check_columns(columns: list[str], names: list[str], name_set: frozenset[str]) -> None:
    given = set(columns)
    if len(given) != len(columns):
        raise InvalidInput("columns has duplicate names", details={"field": "columns"})
    missing = [c for c in names if c not in given]
    if missing:
        raise InvalidInput(
            f"missing column {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
            details={"field": missing[0]},
        )
    extra = [c for c in columns if c not in name_set]
    if extra:
        raise InvalidInput(f"unknown column {extra[0]!r}", details={"field": extra[0]})


def _explain_rows(rows: list[Any], columns: list[str]) -> None:
    """Find the first bad row or value and say where it is."""
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise InvalidInput(f"row {i}: {MAX_DEPTH_HINT}", details={"row": i})
        if len(row) != len(columns):
            raise InvalidInput(
                f"row {i} has {len(row)} values; expected {len(columns)}", details={"row": i}
            )
        for j, value in enumerate(row):
            if value is not None and not isinstance(value, int | float | bool):
                raise InvalidInput(
                    f"row {i}, column {columns[j]!r}: expected a number, got {_show(value)}",
                    details={"row": i, "field": columns[j]},
                )
    raise InvalidInput("the rows could not be read as numbers")


def _records(rows: list[Any], names: list[str]) -> np.ndarray:
    X = np.empty((len(rows), len(names)), dtype=np.float64)
    for i, rec in enumerate(rows):
        if not isinstance(rec, dict):
            raise InvalidInput(
                f"record {i} must be an object of column -> value", details={"row": i}
            )
        try:
            X[i] = [rec[c] if rec[c] is not None else np.nan for c in names]
        except KeyError as e:
            raise InvalidInput(
                f"record {i} lacks column {e.args[0]!r}", details={"row": i, "field": e.args[0]}
            ) from None
        except (TypeError, ValueError):
            for c in names:
                v = rec[c]
                if v is not None and not isinstance(v, int | float | bool):
                    raise InvalidInput(
                        f"record {i}, column {c!r}: expected a number, got {_show(v)}",
                        details={"row": i, "field": c},
                    ) from None
            raise
        if len(rec) != len(names):
            extra = next(k for k in rec if k not in names)
            raise InvalidInput(
                f"record {i} has unknown column {extra!r}", details={"row": i, "field": extra}
            )
    return X


def to_frame(obj: dict[str, Any], sig: Signature, max_rows: int) -> pd.DataFrame:
    """A DataFrame with the signature's columns, for pipelines with non-numeric inputs."""
    rows, columns = rows_of(obj, sig)
    if not rows:
        raise InvalidInput("the batch is empty: send at least one row")
    if len(rows) > max_rows:
        raise InvalidInput(f"the batch has {len(rows)} rows; the limit is {max_rows}")
    try:
        frame = (
            pd.DataFrame.from_records(rows)
            if columns is None
            else pd.DataFrame(rows, columns=columns)
        )
    except (ValueError, TypeError) as e:
        raise InvalidInput(f"the rows do not form a table: {e}") from None
    missing = [c for c in sig.names if c not in frame.columns]
    if missing:
        raise InvalidInput(f"missing column {missing[0]!r}", details={"field": missing[0]})
    extra = [c for c in frame.columns if c not in sig.names]
    if extra:
        raise InvalidInput(f"unknown column {extra[0]!r}", details={"field": extra[0]})
    return frame[sig.names]


def _show(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 40 else text[:37] + "..."
