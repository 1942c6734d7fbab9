"""LightGBM boosters as one double-precision ``ai.onnx.ml.TreeEnsemble`` (opset 5).

onnxmltools writes ``TreeEnsembleRegressor``/``Classifier`` (ai.onnx.ml opset 1),
whose thresholds, leaf values and outputs are float32: summed over hundreds of
trees onto a base the size of the target, predictions of a target in the
thousands drift by more than 1e-4, and values needing more than 7 digits
(amounts, identifiers) land on the wrong side of splits. It also converts
``multiclassova``, zero-as-missing splits and linear trees silently wrong.
Opset 5's ``TreeEnsemble`` computes in double, so this module writes one
straight from the booster's own dump (thresholds and leaf values as LightGBM
stores them): predictions are LightGBM's to ~1e-15. Objectives: regression
ones (identity or exp link), ``binary`` (sigmoid) and ``multiclass``
(softmax); others raise :class:`InvalidInput`.

LightGBM's numerical split, for a value ``x``: with missing type ``NaN`` a NaN
goes the default side; with missing type ``None`` a NaN is read as 0.0;
otherwise ``x <= threshold`` goes left. Both map onto TreeEnsemble's
"missing value tracks true" flag. Splits LightGBM reads differently (zero as
missing, categories) and linear leaves are refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from openmaas.errors import InvalidInput
from openmaas.ml.compress._extras import require
from openmaas.ml.compress.onnx_graph import OPSET, Graph, Part

__all__ = ["TRANSFORMS", "convert_booster"]

TRANSFORMS: dict[str, str | None] = {
    **dict.fromkeys(
        ("regression", "regression_l1", "huber", "fair", "quantile", "mape", "lambdarank",
         "rank_xendcg"),
        None,
    ),
    **dict.fromkeys(("poisson", "gamma", "tweedie"), "Exp"),
}  # fmt: skip
"""Regression objectives and the operator from raw score to prediction (None: identity)."""

_LEQ = 0  # TreeEnsemble nodes_modes: BRANCH_LEQ
_SUM = 1  # aggregate_function
_INPUT = "features"


def convert_booster(
    booster: Any, classes: np.ndarray | None = None, *, num_iteration: int | None = None
) -> Part:
    """The booster's part; ``classes`` label a classifier's columns (default ``0..k-1``).

    ``num_iteration`` keeps the first rounds only; None keeps what ``predict``
    uses by default (the best iteration if the booster knows one, else all).
    """
    dump = booster.dump_model(num_iteration=num_iteration)
    words = str(dump.get("objective", "")).split(" ")
    objective, options = words[0], dict(w.split(":", 1) for w in words[1:] if ":" in w)
    per_round = int(dump.get("num_tree_per_iteration", 1))
    if objective in TRANSFORMS and per_round == 1:
        task = "regression"
    elif (objective == "binary" and per_round == 1) or objective == "multiclass":
        task = "classification"
    else:
        supported = ", ".join(["binary", "multiclass", *TRANSFORMS])
        raise InvalidInput(
            f"cannot export to ONNX: LightGBM objective {objective!r} is not supported; "
            f"supported: {supported}",
            details={"reason": "objective", "objective": objective},
        )
    _check_trees(dump)
    onnx = require("onnx")
    helper, numpy_helper, tp = onnx.helper, onnx.numpy_helper, onnx.TensorProto
    nodes = _Nodes()
    roots, targets = [], []
    for i, tree in enumerate(dump["tree_info"]):
        first_leaf = len(nodes.leaves)
        roots.append(nodes.add_tree(tree["tree_structure"]))
        targets += [i % per_round] * (len(nodes.leaves) - first_leaf)
    g = Graph("lightgbm/")
    g.nodes.append(
        helper.make_node(
            "TreeEnsemble",
            [_INPUT],
            ["lightgbm/raw"],
            name="lightgbm/trees",
            domain="ai.onnx.ml",
            n_targets=per_round,
            aggregate_function=_SUM,
            post_transform=0,
            tree_roots=roots,
            nodes_featureids=nodes.features,
            nodes_splits=numpy_helper.from_array(np.asarray(nodes.splits, dtype=np.float64)),
            nodes_modes=numpy_helper.from_array(np.full(len(nodes.splits), _LEQ, np.uint8)),
            nodes_truenodeids=nodes.true_ids,
            nodes_trueleafs=nodes.true_leafs,
            nodes_falsenodeids=nodes.false_ids,
            nodes_falseleafs=nodes.false_leafs,
            nodes_missing_value_tracks_true=nodes.missing_true,
            leaf_targetids=targets,
            leaf_weights=numpy_helper.from_array(np.asarray(nodes.leaves, dtype=np.float64)),
        )
    )
    output = _link(g, "lightgbm/raw", objective, float(options.get("sigmoid", 1.0)))
    width = 2 if objective == "binary" else per_round
    graph = helper.make_graph(
        g.nodes,
        "lightgbm",
        [helper.make_tensor_value_info(_INPUT, tp.DOUBLE, ["N", booster.num_feature()])],
        [helper.make_tensor_value_info(output, tp.DOUBLE, ["N", width])],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", 5)],
        producer_name="openmaas",
    )
    model.ir_version = 8
    if task == "regression":
        return Part(model, tp.DOUBLE, output, "regression", "lightgbm")
    labels = np.arange(width, dtype=np.int64) if classes is None else np.asarray(classes)
    return Part(model, tp.DOUBLE, output, "classification", "lightgbm", classes=labels)


def _check_trees(dump: dict[str, Any]) -> None:
    for tree in dump["tree_info"]:
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "leaf_coeff" in node:
                _refuse("linear trees (linear_tree=true)", "linear_tree")
            if "split_index" not in node:
                continue
            if node.get("decision_type") != "<=":
                _refuse("splits on categorical features", "categorical_split")
            if node.get("missing_type") == "Zero":
                _refuse("splits treating zero as missing (zero_as_missing=true)", "zero_as_missing")
            stack += [node["left_child"], node["right_child"]]


def _refuse(what: str, reason: str) -> None:
    raise InvalidInput(
        f"cannot export to ONNX: the LightGBM model has {what}, which has no exact ONNX form",
        details={"reason": reason},
    )


def _link(g: Graph, raw: str, objective: str, sigmoid: float) -> str:
    """Raw scores to predictions, as ``Booster.predict`` does."""
    if objective == "binary":
        scaled = g.op("Mul", [raw, g.const(sigmoid, np.float64, "sigmoid")], "scaled")
        positive = g.op("Sigmoid", [scaled], "positive")
        negative = g.op("Sub", [g.const(1.0, np.float64, "one"), positive], "negative")
        return g.op("Concat", [negative, positive], "probabilities", axis=1)
    if objective == "multiclass":
        return g.op("Softmax", [raw], "probabilities", axis=1)
    transform = TRANSFORMS[objective]
    return raw if transform is None else g.op(transform, [raw], "value")


class _Nodes:
    """TreeEnsemble's parallel arrays, filled tree by tree."""

    def __init__(self) -> None:
        self.features: list[int] = []
        self.splits: list[float] = []
        self.true_ids: list[int] = []
        self.true_leafs: list[int] = []
        self.false_ids: list[int] = []
        self.false_leafs: list[int] = []
        self.missing_true: list[int] = []
        self.leaves: list[float] = []

    def _leaf(self, value: float) -> int:
        self.leaves.append(float(value))
        return len(self.leaves) - 1

    def _split(self, feature: int, threshold: float, nan_left: bool) -> int:
        self.features.append(feature)
        self.splits.append(threshold)
        self.missing_true.append(int(nan_left))
        for column in (self.true_ids, self.true_leafs, self.false_ids, self.false_leafs):
            column.append(0)
        return len(self.features) - 1

    def add_tree(self, root: dict[str, Any]) -> int:
        """Add one tree (iteratively: deep trees must not hit the recursion limit)."""
        if "split_index" not in root:  # a lone leaf: a split whose both sides are it
            leaf = self._leaf(root["leaf_value"])
            index = self._split(0, 0.0, True)
            self.true_ids[index] = self.false_ids[index] = leaf
            self.true_leafs[index] = self.false_leafs[index] = 1
            return index
        first = self._node(root)
        stack = [(root, first)]
        while stack:
            node, index = stack.pop()
            for side, ids, leafs in (
                ("left_child", self.true_ids, self.true_leafs),
                ("right_child", self.false_ids, self.false_leafs),
            ):
                child = node[side]
                if "split_index" in child:
                    child_index = self._node(child)
                    ids[index], leafs[index] = child_index, 0
                    stack.append((child, child_index))
                else:
                    ids[index], leafs[index] = self._leaf(child["leaf_value"]), 1
        return first

    def _node(self, node: dict[str, Any]) -> int:
        threshold = float(node["threshold"])
        if node.get("missing_type") == "NaN":
            nan_left = bool(node.get("default_left", True))
        else:  # LightGBM reads NaN as 0.0
            nan_left = threshold >= 0.0
        return self._split(int(node["split_feature"]), threshold, nan_left)
