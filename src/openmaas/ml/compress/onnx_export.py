"""``export_onnx``: a fitted pipeline, catalog model or LightGBM booster as ONNX bytes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sklearn.pipeline import Pipeline

from openmaas.errors import InvalidInput
from openmaas.ml.compress.onnx_graph import assemble
from openmaas.ml.compress.onnx_models import check_fitted, convert_estimator
from openmaas.ml.compress.onnx_preprocessing import preprocessing_graph
from openmaas.ml.preprocessing import TabularPreprocessor

__all__ = ["export_onnx"]


def export_onnx(model: Any, *, feature_names: Sequence[str] | None = None) -> bytes:
    """``model`` as a serialised ONNX model keeping the contract of :mod:`.onnx_graph`.

    ``model`` is a fitted ``Pipeline(prep, model)`` as the engine saves it, a
    fitted catalog algorithm or a ``lightgbm.Booster``. The input columns are
    the preprocessor's feature columns, else ``feature_names``, else the
    model's own names (``feature_names_in_``, the booster's), else ``f0``,
    ``f1``, ... Raises :class:`InvalidInput` naming why when something has no
    ONNX form (text, dates or categories; an algorithm without a converter).
    """
    prep: Any = None
    if isinstance(model, Pipeline):
        prep, model = model.steps[0][1], model.steps[-1][1]
        if prep in ("passthrough", None):
            prep = None
        elif not isinstance(prep, TabularPreprocessor):
            raise InvalidInput(
                f"cannot export to ONNX: unknown preprocessing step {type(prep).__name__}"
            )
    check_fitted(model)
    n_in = _n_features(model)
    if prep is None:
        names = _names(model, feature_names, n_in)
        return assemble(None, None, convert_estimator(model), names)
    graph, out, names = preprocessing_graph(prep)  # first: its refusals say the most
    if prep.n_features_out_ != n_in:
        raise InvalidInput(
            f"the preprocessor writes {prep.n_features_out_} features but the model reads {n_in}"
        )
    return assemble(graph, out, convert_estimator(model), names)


def _n_features(model: Any) -> int:
    if hasattr(model, "num_feature"):
        return int(model.num_feature())
    return int(model.n_features_in_)


def _names(model: Any, given: Sequence[str] | None, n: int) -> list[str]:
    if given is not None:
        names = [str(c) for c in given]
    elif hasattr(model, "feature_name"):
        names = [str(c) for c in model.feature_name()]
    elif hasattr(model, "feature_names_in_"):
        names = [str(c) for c in model.feature_names_in_]
    else:
        names = [f"f{i}" for i in range(n)]
    if len(names) != n:
        raise InvalidInput(f"got {len(names)} feature names for a model of {n} features")
    return names
