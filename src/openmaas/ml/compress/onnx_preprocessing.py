"""A fitted :class:`~openmaas.ml.preprocessing.TabularPreprocessor` as ONNX operators.

Only what is arithmetic on numbers converts: numeric and boolean columns,
through ``ToFloat`` (±inf become NaN), ``SimpleImputer`` (with its missing
indicator) and ``StandardScaler``, in whatever order the fitted pipeline holds
them. Datetime parts, text lengths and category encodings work on strings and
timestamps a float tensor cannot carry, so a preprocessor with such columns is
refused with :class:`InvalidInput` naming them. The graph computes in double,
as scikit-learn does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from openmaas.errors import InvalidInput
from openmaas.ml.compress._extras import require
from openmaas.ml.compress.onnx_graph import INPUT, Graph
from openmaas.ml.preprocessing import TabularPreprocessor, ToFloat

__all__ = ["CONVERTIBLE_KINDS", "check_columns", "preprocessing_graph"]

CONVERTIBLE_KINDS = ("numeric", "boolean")


def check_columns(columns: Any) -> list[str]:
    """The feature names of ``(name, kind)`` pairs, if every kind converts; else InvalidInput."""
    bad = [(str(n), str(k)) for n, k in columns if k not in CONVERTIBLE_KINDS]
    if bad:
        listed = ", ".join(f"{n!r} ({k})" for n, k in bad[:5])
        raise InvalidInput(
            f"cannot export to ONNX: columns {listed} are not numeric or boolean; the "
            "exported model takes a float tensor, which cannot carry text, dates or "
            "category labels",
            details={"columns": [n for n, _ in bad], "kinds": sorted({k for _, k in bad})},
        )
    return [str(n) for n, _ in columns]


def preprocessing_graph(prep: TabularPreprocessor) -> tuple[Graph, str, list[str]]:
    """The graph from ``input`` to the model's features, its output name and the input names."""
    names = check_columns(prep.columns)
    g = Graph("prep/")
    position = {n: i for i, n in enumerate(names)}
    blocks = []
    for kind, transformer, cols in prep.transformer_.transformers_:
        if kind == "remainder" or transformer == "drop" or len(cols) == 0:
            continue
        index = [position[str(c)] for c in cols]
        t = g.op("Gather", [INPUT, g.const(index, np.int64, "columns")], kind, axis=1)
        steps = transformer.steps if isinstance(transformer, Pipeline) else [("", transformer)]
        for step_name, step in steps:
            t = _step(g, t, step, f"{kind}.{step_name}" if step_name else kind)
        blocks.append(t)
    out = g.op("Concat", blocks, "features", axis=1) if len(blocks) > 1 else blocks[0]
    return g, out, names


def _step(g: Graph, t: str, step: Any, where: str) -> str:
    onnx = require("onnx")
    double = onnx.TensorProto.DOUBLE
    if isinstance(step, ToFloat):
        nan = g.const(np.nan, np.float64, "nan")
        return g.op("Where", [g.op("IsInf", [t]), nan, t], "finite")
    if isinstance(step, SimpleImputer):
        return _impute(g, t, step, where)
    if isinstance(step, StandardScaler):
        if step.mean_ is not None:
            t = g.op("Sub", [t, g.const(step.mean_, np.float64, "mean")], "centred")
        if step.scale_ is not None:
            t = g.op("Div", [t, g.const(step.scale_, np.float64, "scale")], "scaled")
        return t
    if step == "passthrough":
        return g.op("Cast", [t], "passthrough", to=double)
    raise InvalidInput(
        f"cannot export to ONNX: preprocessing step {where!r} ({type(step).__name__}) "
        "has no ONNX form",
        details={"step": where},
    )


def _impute(g: Graph, t: str, imputer: SimpleImputer, where: str) -> str:
    onnx = require("onnx")
    missing_values = imputer.missing_values
    if not (isinstance(missing_values, float) and np.isnan(missing_values)):
        raise InvalidInput(
            f"cannot export to ONNX: imputer {where!r} replaces {missing_values!r}, not NaN",
            details={"step": where},
        )
    stats = np.asarray(imputer.statistics_, dtype=np.float64)
    empty = np.isnan(stats)
    missing = g.op("IsNaN", [t], "missing")
    filled = g.op(
        "Where", [missing, g.const(np.where(empty, 0.0, stats), np.float64, "fill"), t], "imputed"
    )
    if empty.any() and not imputer.keep_empty_features:
        kept = np.flatnonzero(~empty)
        filled = g.op("Gather", [filled, g.const(kept, np.int64, "kept")], "kept", axis=1)
    indicator = imputer.indicator_
    if indicator is None or len(indicator.features_) == 0:
        return filled
    flags = g.op(
        "Gather", [missing, g.const(indicator.features_, np.int64, "flagged")], "flags", axis=1
    )
    flags = g.op("Cast", [flags], "indicator", to=onnx.TensorProto.DOUBLE)
    return g.op("Concat", [filled, flags], "with_indicator", axis=1)
