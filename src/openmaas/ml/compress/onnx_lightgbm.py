"""LightGBM regressors as one double-precision ``ai.onnx.ml.TreeEnsemble`` (opset 5).

onnxmltools writes ``TreeEnsembleRegressor`` (ai.onnx.ml opset 1), whose
thresholds, leaf values and output are float32: summed over hundreds of trees
onto a base the size of the target, predictions of a target in the thousands
drift by more than 1e-4. Opset 5's ``TreeEnsemble`` computes in double, so this
module writes one straight from the booster's own dump (thresholds and leaf
values as LightGBM stores them) and the predictions are LightGBM's to the last
few bits. Classifiers keep onnxmltools: probabilities are within 1e-7 there.

LightGBM's numerical split, for a value ``x``: with missing type ``NaN`` a NaN
goes the default side; with missing type ``None`` a NaN is read as 0.0;
otherwise ``x <= threshold`` goes left. Both map onto TreeEnsemble's
"missing value tracks true" flag. Splits LightGBM reads differently (zero as
missing, categories, linear leaves) are refused before this module is reached.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from openmaas.ml.compress._extras import require
from openmaas.ml.compress.onnx_graph import OPSET, Part

__all__ = ["TRANSFORMS", "convert_regressor"]

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


def convert_regressor(booster: Any) -> Part | None:
    """A double-precision part for a one-output regression booster; None for other kinds."""
    dump = booster.dump_model()
    objective = str(dump.get("objective", "")).split(" ")[0]
    if objective not in TRANSFORMS or dump.get("num_tree_per_iteration", 1) != 1:
        return None
    onnx = require("onnx")
    helper, numpy_helper, tp = onnx.helper, onnx.numpy_helper, onnx.TensorProto
    nodes = _Nodes()
    roots = [nodes.add_tree(tree["tree_structure"]) for tree in dump["tree_info"]]
    ensemble = helper.make_node(
        "TreeEnsemble",
        [_INPUT],
        ["raw"],
        name="tree_ensemble",
        domain="ai.onnx.ml",
        n_targets=1,
        aggregate_function=_SUM,
        post_transform=0,
        tree_roots=roots,
        nodes_featureids=nodes.features,
        nodes_splits=numpy_helper.from_array(np.asarray(nodes.splits, dtype=np.float64)),
        nodes_modes=numpy_helper.from_array(np.full(len(nodes.splits), _LEQ, dtype=np.uint8)),
        nodes_truenodeids=nodes.true_ids,
        nodes_trueleafs=nodes.true_leafs,
        nodes_falsenodeids=nodes.false_ids,
        nodes_falseleafs=nodes.false_leafs,
        nodes_missing_value_tracks_true=nodes.missing_true,
        leaf_targetids=[0] * len(nodes.leaves),
        leaf_weights=numpy_helper.from_array(np.asarray(nodes.leaves, dtype=np.float64)),
    )
    graph_nodes = [ensemble]
    output = "raw"
    transform = TRANSFORMS[objective]
    if transform is not None:
        graph_nodes.append(helper.make_node(transform, ["raw"], ["value"], name="transform"))
        output = "value"
    n_features = booster.num_feature()
    graph = helper.make_graph(
        graph_nodes,
        "lightgbm",
        [helper.make_tensor_value_info(_INPUT, tp.DOUBLE, ["N", n_features])],
        [helper.make_tensor_value_info(output, tp.DOUBLE, ["N", 1])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", 5)],
        producer_name="openmaas",
    )
    model.ir_version = 8
    return Part(model, tp.DOUBLE, output, "regression", "lightgbm")


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
