"""``quantize``: int8 dynamic quantisation of an exported model's weight matrices.

ONNX Runtime's dynamic quantisation stores each float32 weight matrix of a
``MatMul`` as int8 with a scale and quantises activations per batch at run
time. It pays off for neural networks (the ``dnn`` export writes its layers as
MatMul so it applies); tree ensembles and the double-precision linear models
hold no such matrices, so quantising them is refused rather than returning a
copy that only looks compressed.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from openmaas.errors import InvalidInput
from openmaas.ml.compress._extras import require

__all__ = ["quantize"]


def quantize(model: bytes, *, per_channel: bool = False) -> bytes:
    """``model`` (from :func:`~.onnx_export.export_onnx`) with int8 weights; same contract.

    ``per_channel`` gives each output unit its own scale (more accurate, slightly
    larger). Raises :class:`InvalidInput` when the model has nothing to quantise.
    """
    onnx = require("onnx")
    quantization = require("onnxruntime.quantization")
    proto = onnx.load_from_string(model)
    weights = {
        t.name
        for t in proto.graph.initializer
        if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 2
    }
    nodes = [
        n.name
        for n in proto.graph.node
        if n.op_type == "MatMul" and len(n.input) == 2 and n.input[1] in weights
    ]
    if not nodes:
        raise InvalidInput(
            "nothing to quantise: the model has no float32 weight matrices (tree ensembles "
            "and linear models are exported without them); quantisation applies to the dnn",
            details={"reason": "no_weights"},
        )
    with tempfile.TemporaryDirectory(prefix="openmaas-quantize-") as tmp:
        source, target = Path(tmp) / "model.onnx", Path(tmp) / "model.int8.onnx"
        source.write_bytes(model)
        root = logging.getLogger()
        root.addFilter(_no_preprocessing_advice)
        try:
            quantization.quantize_dynamic(
                source,
                target,
                weight_type=quantization.QuantType.QInt8,
                nodes_to_quantize=nodes,
                per_channel=per_channel,
            )
        finally:
            root.removeFilter(_no_preprocessing_advice)
        out = onnx.load_from_string(target.read_bytes())
    kept = {p.key for p in out.metadata_props}
    for prop in proto.metadata_props:
        if prop.key not in kept:
            out.metadata_props.append(prop)
    data: bytes = out.SerializeToString()
    return data


def _no_preprocessing_advice(record: logging.LogRecord) -> bool:
    """Drop the quantiser's advice to run shape pre-processing (ours has no convolutions)."""
    return not str(record.msg).startswith("Please consider to run pre-processing")
