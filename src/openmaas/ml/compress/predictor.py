"""``OnnxPredictor``: an exported model behind ``predict``/``predict_proba``, on ONNX Runtime.

One intra-op thread by default: a serving replica runs one model call per core
and scales by replicas, and latency reports compare single-threaded numbers.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt

from openmaas.errors import InvalidFile, InvalidInput
from openmaas.ml.compress._extras import require
from openmaas.ml.compress.onnx_graph import FORMAT, INPUT, META, decode_classes

__all__ = ["OnnxPredictor"]


class OnnxPredictor:
    """Predictions of a model written by :func:`~.onnx_export.export_onnx` (or quantised).

    ``X`` is a 2-D float array whose columns are :attr:`feature_names`, in order,
    or a DataFrame holding those columns (by name; other columns are ignored).
    :attr:`task` is ``classification`` (``predict`` gives labels from
    :attr:`classes`, ``predict_proba`` their probabilities) or ``regression``
    (``predict`` gives ``(n,)`` values, or ``(n, targets)`` for several).
    """

    def __init__(self, model: bytes, *, threads: int = 1) -> None:
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own (Fail, InvalidGraph, ...) types
            raise InvalidFile(f"not a loadable ONNX model: {e}") from e
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get(META["format"]) != FORMAT:
            raise InvalidFile("the ONNX model was not exported by OpenMaaS (no format metadata)")
        self.task: str = meta[META["task"]]
        self.feature_names: list[str] = json.loads(meta[META["feature_names"]])
        self.source: str = meta.get(META["source"], "")
        self.classes: np.ndarray | None = (
            decode_classes(meta[META["classes"]]) if META["classes"] in meta else None
        )
        kind = self.session.get_inputs()[0].type
        self._dtype = np.float64 if kind == "tensor(double)" else np.float32
        self._output = self.session.get_outputs()[0].name

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def n_outputs(self) -> int:
        """Columns of the output: classes, or regression targets."""
        if self.classes is not None:
            return len(self.classes)
        shape = self.session.get_outputs()[0].shape
        return int(shape[1]) if len(shape) == 2 and isinstance(shape[1], int) else 1

    def _run(self, X: Any) -> npt.NDArray[np.float64]:
        array = self._columns(X) if hasattr(X, "columns") else np.asarray(X)
        if array.ndim != 2 or array.shape[1] != self.n_features:
            raise InvalidInput(
                f"expected a 2-D array of {self.n_features} feature columns; "
                f"got shape {array.shape}",
                details={"expected_features": self.n_features},
            )
        if array.dtype.kind not in "fiub":
            raise InvalidInput(f"expected numbers; got an array of {array.dtype}")
        if len(array) == 0:  # some operators (ArrayFeatureExtractor) refuse empty batches
            width = self.n_outputs
            return np.empty((0, width), dtype=np.float64)
        feed = {INPUT: np.ascontiguousarray(array, dtype=self._dtype)}
        out: npt.NDArray[np.float64] = self.session.run([self._output], feed)[0]
        return out

    def _columns(self, frame: Any) -> npt.NDArray[Any]:
        """A DataFrame's feature columns, by name, in the model's order (others are ignored)."""
        missing = [name for name in self.feature_names if name not in frame.columns]
        if missing:
            raise InvalidInput(
                f"the input has no column {missing[0]!r}", details={"column": missing[0]}
            )
        try:
            return np.asarray(frame[self.feature_names].to_numpy(dtype=np.float64))
        except (TypeError, ValueError) as e:
            raise InvalidInput(f"the feature columns must hold numbers: {e}") from e

    def predict_proba(self, X: Any) -> npt.NDArray[np.float64]:
        """Class probabilities ``(n, classes)``, columns in the order of :attr:`classes`."""
        if self.classes is None:
            raise InvalidInput("a regression model has no class probabilities")
        return self._run(X)

    def predict(self, X: Any) -> npt.NDArray[Any]:
        out = self._run(X)
        if self.classes is not None:
            labels: npt.NDArray[Any] = self.classes[np.argmax(out, axis=1)]
            return labels
        return np.ascontiguousarray(out[:, 0]) if out.shape[1] == 1 else out
