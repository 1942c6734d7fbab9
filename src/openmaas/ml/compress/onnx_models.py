"""Fitted estimators as ONNX graphs (:class:`~.onnx_graph.Part` s), one converter per kind.

- LightGBM (a catalog model or a bare ``lightgbm.Booster``): in double
  precision by :mod:`.onnx_lightgbm`; a catalog model is cut to its
  ``best_iteration_`` first, as its ``predict`` is;
- scikit-learn models behind the catalog's ``linear``, ``random_forest`` and
  ``extra_trees``: skl2onnx, class probabilities as a plain tensor
  (``zipmap=False``); trees read float32 as scikit-learn's trees do, linear
  models double;
- the torch ``dnn``: built here from its weights (MatMul + Add per layer, so
  int8 dynamic quantisation finds its weights), rather than through
  ``torch.onnx.export``, whose TorchScript path is deprecated in torch 2.13 and
  whose dynamo path needs onnxscript. Category embeddings and mixed
  classification/regression heads are refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from openmaas.errors import InvalidInput
from openmaas.ml.compress._extras import require
from openmaas.ml.compress.onnx_graph import ML_OPSET, OPSET, Graph, Part
from openmaas.ml.compress.onnx_lightgbm import convert_booster

__all__ = ["check_fitted", "convert_estimator"]

_INPUT = "features"


def convert_estimator(model: Any) -> Part:
    """The ONNX part of a fitted catalog algorithm or ``lightgbm.Booster``; else InvalidInput."""
    name = getattr(model, "name", None)
    if type(model).__name__ == "Booster" and type(model).__module__.startswith("lightgbm"):
        return convert_booster(model)
    if name == "lightgbm":
        classes = model.classes_ if model._is_classifier else None
        return convert_booster(model.booster_, classes, num_iteration=model.best_iteration_)
    if name in ("linear", "random_forest", "extra_trees"):
        return _convert_sklearn(model)
    if name == "dnn":
        return _convert_dnn(model)
    raise InvalidInput(
        f"cannot export {name or type(model).__name__!r} to ONNX; supported: a LightGBM "
        "Booster and the catalog algorithms lightgbm, linear, random_forest, extra_trees, dnn",
        details={"algorithm": name},
    )


def check_fitted(model: Any) -> None:
    """InvalidInput unless ``model`` (a catalog algorithm; boosters always are) is fitted."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    name = getattr(model, "name", None)
    if name is None:
        return
    try:
        check_is_fitted(model)
    except NotFittedError as e:
        raise InvalidInput(f"cannot export an unfitted {name!r} model to ONNX") from e


def _convert_sklearn(model: Any) -> Part:
    onnx = require("onnx")
    skl2onnx = require("skl2onnx")
    types = require("skl2onnx.common.data_types")
    estimator = model.estimator_
    trees = model.name != "linear"  # scikit-learn's trees compare float32 values
    tensor = types.FloatTensorType if trees else types.DoubleTensorType
    classify = model._is_classifier
    options = {id(estimator): {"zipmap": False}} if classify else None
    onnx_model = skl2onnx.convert_sklearn(
        estimator,
        initial_types=[(_INPUT, tensor([None, int(model.n_features_in_)]))],
        options=options,
        target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
    )
    elem = onnx.TensorProto.FLOAT if trees else onnx.TensorProto.DOUBLE
    if classify:
        return Part(onnx_model, elem, "probabilities", "classification", model.name,
                    classes=np.asarray(model.classes_))  # fmt: skip
    n_outputs = getattr(estimator, "n_outputs_", None)
    if n_outputs is None:  # Ridge
        coef = np.asarray(estimator.coef_)
        n_outputs = coef.shape[0] if coef.ndim == 2 else 1
    return Part(onnx_model, elem, "variable", "regression", model.name, n_outputs=int(n_outputs))


def _convert_dnn(model: Any) -> Part:
    """The DNN's trunk and heads, layer by layer, from its fitted weights."""
    onnx = require("onnx")
    if model.categorical_features_:
        raise InvalidInput(
            "cannot export to ONNX: the dnn model embeds categorical columns "
            f"{model.categorical_features_}; only numeric inputs are supported",
            details={"reason": "categorical_embeddings"},
        )
    kinds = set(model.target_kinds_)
    if len(kinds) > 1 or (kinds == {"classification"} and len(model.target_kinds_) > 1):
        raise InvalidInput(
            "cannot export to ONNX: the dnn model has several classification heads or mixes "
            "classification and regression heads; one output tensor cannot carry them",
            details={"reason": "mixed_heads"},
        )
    g = Graph("dnn/")
    h = _INPUT
    module = model.module_
    for layer in module.trunk:
        h = _layer(g, h, layer)
    heads = list(module.heads)
    weight = np.vstack([head.weight.detach().numpy() for head in heads])
    bias = np.concatenate([head.bias.detach().numpy() for head in heads])
    out = _linear(g, h, weight, bias)
    classify = kinds == {"classification"}
    if classify:
        part_out = g.op("Softmax", [out], "probabilities", axis=1)
    else:  # heads predict the standardised target; the model answers in its units
        out = g.op("Cast", [out], "standardised", to=onnx.TensorProto.DOUBLE)
        out = g.op("Mul", [out, g.const(model.y_scale_, np.float64, "y_scale")], "rescaled")
        part_out = g.op("Add", [out, g.const(model.y_mean_, np.float64, "y_mean")], "prediction")
    n_in = int(model.n_features_in_)
    graph = onnx.helper.make_graph(
        g.nodes,
        "dnn",
        [onnx.helper.make_tensor_value_info(_INPUT, onnx.TensorProto.FLOAT, ["N", n_in])],
        [onnx.helper.make_tensor_value_info(part_out, onnx.TensorProto.UNDEFINED, None)],
        initializer=g.initializers,
    )
    onnx_model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)], producer_name="openmaas"
    )
    if classify:
        classes = np.asarray(model.target_classes_[0])
        return Part(onnx_model, onnx.TensorProto.FLOAT, part_out, "classification", "dnn",
                    classes=classes)  # fmt: skip
    return Part(onnx_model, onnx.TensorProto.FLOAT, part_out, "regression", "dnn",
                n_outputs=len(heads))  # fmt: skip


def _linear(g: Graph, h: str, weight: np.ndarray, bias: np.ndarray) -> str:
    product = g.op("MatMul", [h, g.const(weight.T, np.float32, "weight")], "matmul")
    return g.op("Add", [product, g.const(bias, np.float32, "bias")], "linear")


def _layer(g: Graph, h: str, layer: Any) -> str:
    from torch import nn

    if isinstance(layer, nn.Linear):
        return _linear(g, h, layer.weight.detach().numpy(), layer.bias.detach().numpy())
    if isinstance(layer, nn.BatchNorm1d):  # inference: a fixed affine map per unit
        assert layer.running_var is not None and layer.running_mean is not None
        var = layer.running_var.detach().numpy().astype(np.float64)
        mean = layer.running_mean.detach().numpy().astype(np.float64)
        scale = 1.0 / np.sqrt(var + layer.eps)
        if layer.affine:
            scale = scale * layer.weight.detach().numpy()
            shift = layer.bias.detach().numpy() - mean * scale
        else:
            shift = -mean * scale
        h = g.op("Mul", [h, g.const(scale, np.float32, "bn_scale")], "bn")
        return g.op("Add", [h, g.const(shift, np.float32, "bn_shift")], "bn")
    if isinstance(layer, nn.Dropout):
        return h
    if isinstance(layer, nn.ReLU):
        return g.op("Relu", [h])
    if isinstance(layer, nn.LeakyReLU):
        return g.op("LeakyRelu", [h], alpha=float(layer.negative_slope))
    if isinstance(layer, nn.Tanh):
        return g.op("Tanh", [h])
    if isinstance(layer, nn.Sigmoid):
        return g.op("Sigmoid", [h])
    raise InvalidInput(
        f"cannot export to ONNX: the dnn model has a {type(layer).__name__} layer",
        details={"layer": type(layer).__name__},
    )
