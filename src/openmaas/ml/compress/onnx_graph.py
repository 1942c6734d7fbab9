"""Building and joining ONNX graphs: the one output contract every exported model keeps.

An exported model has one input, ``input``: a ``[N, n_features]`` double
tensor whose columns are the raw feature columns named in the metadata. Its
one output is ``probabilities`` (``[N, n_classes]``, columns in the order of
the metadata's classes) for classifiers or ``prediction`` (``[N, n_targets]``)
for regressors, both double. Metadata (``metadata_props``, see :data:`META`)
holds the format, the task, the feature names, the classes and the source
model kind, so a server can validate and decode without the original model.

Converters (skl2onnx; ours for LightGBM and torch) each produce a model whose
graph reads one tensor; :func:`assemble` renames it under ``model/``, puts the
preprocessing graph (``prep/``) in front and the output contract behind. All
parts target :data:`OPSET`: converters declare the highest operator version
they used, and every operator they chose is valid up to the target, so the
joined model declares the target.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from openmaas.ml.compress._extras import require

if TYPE_CHECKING:
    import onnx

__all__ = ["FORMAT", "META", "OPSET", "Graph", "Part", "assemble", "decode_classes"]

OPSET = 15
"""Default-domain opset of every exported model (widely supported by ONNX Runtime)."""
ML_OPSET = 3
FORMAT = "1"
META = {
    "format": "openmaas.format",
    "task": "openmaas.task",
    "feature_names": "openmaas.feature_names",
    "classes": "openmaas.classes",
    "source": "openmaas.source",
}
INPUT = "input"
Task = Literal["classification", "regression"]


class Graph:
    """Nodes and constants under a name prefix, so parts never clash when joined."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def const(self, value: Any, dtype: Any, hint: str = "const") -> str:
        onnx = require("onnx")
        name = self.name(hint)
        array = np.asarray(value, dtype=dtype)
        self.initializers.append(onnx.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str = "", **attrs: Any) -> str:
        """Add one node with one output; return the output's name."""
        onnx = require("onnx")
        out = self.name(hint or op_type.lower())
        node = onnx.helper.make_node(op_type, inputs, [out], name=f"{out}/node", **attrs)
        self.nodes.append(node)
        return out


@dataclass
class Part:
    """A converted estimator: ``model`` reads ``[N, n]`` of ``input_type``, writes ``output``.

    ``input_type`` is an ``onnx.TensorProto`` element type (FLOAT or DOUBLE):
    each estimator reads the precision its native implementation computes in,
    so ONNX compares the same numbers (scikit-learn's trees and torch in
    float32, LightGBM and linear models in double).
    """

    model: onnx.ModelProto
    input_type: int
    output: str
    task: Task
    source: str
    classes: np.ndarray | None = None
    n_outputs: int = 1
    extra_meta: dict[str, str] = field(default_factory=dict)


def encode_classes(classes: np.ndarray) -> str:
    values = [v.item() if isinstance(v, np.generic) else v for v in classes.tolist()]
    return json.dumps({"dtype": classes.dtype.str, "values": values})


def decode_classes(text: str) -> np.ndarray:
    data = json.loads(text)
    dtype = np.dtype(data["dtype"])
    if dtype.kind == "O":
        out = np.empty(len(data["values"]), dtype=object)
        out[:] = data["values"]
        return out
    return np.asarray(data["values"], dtype=dtype)


def _renamed(model: onnx.ModelProto, prefix: str) -> onnx.GraphProto:
    """A copy of the graph with every tensor and node name under ``prefix``."""
    graph: onnx.GraphProto = require("onnx").GraphProto()
    graph.CopyFrom(model.graph)

    def rename(name: str) -> str:
        return f"{prefix}{name}" if name else name

    for node in graph.node:
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
        node.name = rename(node.name or node.output[0])
    if graph.sparse_initializer:
        raise ValueError("sparse initializers are not supported")
    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
    for info in (*graph.input, *graph.output, *graph.value_info):
        info.name = rename(info.name)
    return graph


def assemble(
    prep: Graph | None,
    prep_output: str | None,
    part: Part,
    feature_names: list[str],
) -> bytes:
    """The exported model: ``input`` → [preprocessing] → estimator → output contract."""
    onnx = require("onnx")
    helper, tp = onnx.helper, onnx.TensorProto
    inner = _renamed(part.model, "model/")
    inner_inputs = [
        i.name for i in inner.input if i.name not in {t.name for t in inner.initializer}
    ]
    if len(inner_inputs) != 1:
        raise ValueError(f"the converted model reads {len(inner_inputs)} tensors, not one")
    glue = Graph("out/")
    source = prep_output if prep_output is not None else INPUT
    glue.nodes.append(
        helper.make_node("Cast", [source], [inner_inputs[0]], name="cast/in", to=part.input_type)
    )
    output = "probabilities" if part.task == "classification" else "prediction"
    glue.nodes.append(
        helper.make_node("Cast", [f"model/{part.output}"], [output], name="cast/out", to=tp.DOUBLE)
    )
    width = len(part.classes) if part.classes is not None else part.n_outputs
    graph = helper.make_graph(
        [*(prep.nodes if prep else []), glue.nodes[0], *inner.node, glue.nodes[1]],
        "openmaas",
        [helper.make_tensor_value_info(INPUT, tp.DOUBLE, ["N", len(feature_names)])],
        [helper.make_tensor_value_info(output, tp.DOUBLE, ["N", width])],
        initializer=[*(prep.initializers if prep else []), *inner.initializer],
    )
    domains = {op.domain or "" for op in part.model.opset_import}
    opsets = [helper.make_opsetid("", OPSET)]
    if domains - {"", "ai.onnx"}:
        versions: dict[str, int] = {}
        for op in part.model.opset_import:
            versions[op.domain] = max(op.version, versions.get(op.domain, 0))
        opsets += [helper.make_opsetid(d, versions[d]) for d in sorted(domains - {"", "ai.onnx"})]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="openmaas")
    model.ir_version = max(part.model.ir_version, 8)
    meta = {
        META["format"]: FORMAT,
        META["task"]: part.task,
        META["feature_names"]: json.dumps(feature_names),
        META["source"]: part.source,
        **part.extra_meta,
    }
    if part.classes is not None:
        meta[META["classes"]] = encode_classes(part.classes)
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data
