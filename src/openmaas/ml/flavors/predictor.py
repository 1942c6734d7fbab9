"""Loading a version's directory into something that predicts.

Every predictor takes a 2-D float matrix whose columns follow the signature
(the fast path: no pandas), and pipelines also take a DataFrame (their
preprocessing wants named, typed columns). Models are loaded once and kept
warm by the caller; ``predict`` is safe to call from one thread at a time.
"""

from __future__ import annotations

import abc
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from openmaas.errors import InvalidFile, InvalidInput

FLAVORS = ("pipeline", "lightgbm", "skops", "onnx", "pickle")
MAIN_FILE = {
    "pipeline": "pipeline.json",
    "lightgbm": "model.txt",
    "skops": "model.skops",
    "onnx": "model.onnx",
    "pickle": "model.pkl",
}

# scikit-learn estimators a ``skops`` version may hold beyond what skops trusts itself.
SKOPS_EXTRA_TYPES = frozenset(
    {"sklearn.tree._tree.Tree", "numpy.dtype", "lightgbm.basic.Booster", "collections.OrderedDict"}
)


def main_file(flavor: str) -> str:
    if flavor not in MAIN_FILE:
        raise InvalidInput(
            f"unknown model flavour {flavor!r}; use one of {', '.join(FLAVORS)}",
            details={"field": "flavor"},
        )
    return MAIN_FILE[flavor]


@dataclass
class Output:
    predictions: np.ndarray
    probabilities: np.ndarray | None = None


class Predictor(abc.ABC):
    flavor: str
    classes: list[Any] | None = None
    #: takes a float matrix directly (no DataFrame per request)
    matrix_input: bool = True

    @abc.abstractmethod
    def predict(self, X: Any) -> Output: ...

    @property
    def n_features(self) -> int | None:
        return None

    @property
    def feature_names(self) -> list[str] | None:
        return None

    @property
    def accelerated(self) -> bool:
        """Whether predictions run on ONNX Runtime instead of the model's own code."""
        return False


class LightGBMPredictor(Predictor):
    """A bare Booster: its output is what ``Booster.predict`` gives (for a binary
    objective, the probability of class 1, as MLflow serves it).

    ``accelerate``: compute that on ONNX Runtime where it is installed and gives
    the same answers (:mod:`openmaas.ml.compress.accelerate`); serving replicas
    ask for it, as the one model call is most of a request's cost.
    """

    flavor = "lightgbm"
    _fast: Any = None

    def __init__(self, directory: Path, *, accelerate: bool = False) -> None:
        import lightgbm as lgb

        try:
            self.booster = lgb.Booster(model_file=str(directory / MAIN_FILE["lightgbm"]))
        except Exception as e:  # lightgbm raises LightGBMError on any bad text
            raise InvalidFile(f"model.txt is not a LightGBM model: {e}") from None
        self.n_classes = int(self.booster.params.get("num_class", 1) or 1)
        self.n_classes = max(self.n_classes, self.booster.num_model_per_iteration())
        if self.n_classes > 1:
            self.classes = list(range(self.n_classes))
        self._width = int(self.booster.num_feature())
        if accelerate:
            from openmaas.ml.compress.accelerate import booster_session

            self._fast = booster_session(self.booster)

    @property
    def accelerated(self) -> bool:
        return self._fast is not None

    @property
    def n_features(self) -> int:
        return self._width

    @property
    def feature_names(self) -> list[str]:
        return [str(n) for n in self.booster.feature_name()]

    def predict(self, X: Any) -> Output:
        if self._fast is not None and _float_matrix(X, self._width):
            out = self._fast(np.ascontiguousarray(X))
        else:  # anything else: the booster's own checks and messages
            out = np.asarray(self.booster.predict(X, num_threads=1))
        if out.ndim == 2:
            return Output(out.argmax(axis=1), out)
        return Output(out)


class _EstimatorPredictor(Predictor):
    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator
        classes = getattr(estimator, "classes_", None)
        self.classes = None if classes is None else [_plain(c) for c in classes]

    @property
    def n_features(self) -> int | None:
        n = getattr(self.estimator, "n_features_in_", None)
        return None if n is None else int(n)

    @property
    def feature_names(self) -> list[str] | None:
        names = getattr(self.estimator, "feature_names_in_", None)
        return None if names is None else [str(n) for n in names]

    def predict(self, X: Any) -> Output:
        pred = np.asarray(self.estimator.predict(X))
        proba = None
        if self.classes is not None and hasattr(self.estimator, "predict_proba"):
            proba = np.asarray(self.estimator.predict_proba(X))
        return Output(pred, proba)


class SkopsPredictor(_EstimatorPredictor):
    flavor = "skops"

    def __init__(self, directory: Path) -> None:
        from openmaas.ml.catalog.persist import load_skops

        super().__init__(load_skops(directory / MAIN_FILE["skops"], SKOPS_EXTRA_TYPES))


class PicklePredictor(_EstimatorPredictor):
    """Loading a pickle runs code from the file: only reached when an operator allowed it."""

    flavor = "pickle"

    def __init__(self, directory: Path) -> None:
        try:
            with (directory / MAIN_FILE["pickle"]).open("rb") as f:
                estimator = pickle.load(f)  # allowed by the operator
        except Exception as e:
            raise InvalidFile(f"model.pkl cannot be loaded: {e}") from None
        if not hasattr(estimator, "predict"):
            raise InvalidFile("model.pkl holds no object with a predict method")
        super().__init__(estimator)


class PipelinePredictor(_EstimatorPredictor):
    """A run's model: preprocessing + algorithm, fed a DataFrame with the signature's names."""

    flavor = "pipeline"
    matrix_input = False

    _fast: Any = None

    def __init__(
        self, directory: Path, names: list[str] | None = None, *, accelerate: bool = False
    ) -> None:
        from openmaas.ml.catalog.persist import load_pipeline

        pipe = load_pipeline(directory)
        super().__init__(pipe)
        model = pipe.steps[-1][1]
        classes = getattr(model, "classes_", None)
        self.classes = None if classes is None else [_plain(c) for c in classes]
        self.names = names
        if accelerate and names:
            from openmaas.ml.compress.accelerate import pipeline_session

            self._fast = pipeline_session(pipe, names)
            # requests are parsed into a float matrix in the signature's order
            self.matrix_input = self._fast is not None

    @property
    def accelerated(self) -> bool:
        return self._fast is not None

    def predict(self, X: Any) -> Output:
        if self._fast is not None and self.names and _float_matrix(X, len(self.names)):
            predictions, probabilities = self._fast(np.ascontiguousarray(X))
            return Output(predictions, probabilities)
        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(np.asarray(X), columns=self.names)
        return super().predict(X)


class OnnxPredictor(Predictor):
    """Any ONNX model with one 2-D float input; a second output is read as probabilities.

    A model OpenMaaS exported (:mod:`openmaas.ml.compress`, its metadata says so)
    has one output, probabilities or values: it is read by that package's
    predictor, so it answers labels and probabilities as the version it came
    from did.
    """

    flavor = "onnx"
    exported: Any = None  # an ml.compress OnnxPredictor, for models OpenMaaS exported

    def __init__(self, directory: Path) -> None:
        try:
            import onnxruntime as ort
        except ImportError:  # pragma: no cover - the onnx extra is not installed
            raise InvalidInput(
                "ONNX models need the 'onnx' extra: pip install openmaas[onnx]"
            ) from None
        if self._load_exported(directory):
            return
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(directory / MAIN_FILE["onnx"]), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as e:
            raise InvalidFile(f"model.onnx is not a loadable ONNX model: {e}") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise InvalidFile(f"model.onnx has {len(inputs)} inputs; one 2-D input is supported")
        self.input = inputs[0]
        self.dtype = np.float64 if "double" in self.input.type else np.float32
        self.outputs = [o.name for o in self.session.get_outputs()]
        if len(self.outputs) > 1 and self.n_features is not None:
            # the class count shows only in an answer: learn it from one row of zeros
            try:
                self.predict(np.zeros((1, self.n_features)))
            except Exception as e:
                raise InvalidFile(
                    f"model.onnx does not predict on {self.n_features} inputs: {e}"
                ) from None

    def _load_exported(self, directory: Path) -> bool:
        """Whether the model is one OpenMaaS exported (then loaded through ``ml.compress``)."""
        from openmaas.ml.compress import OnnxPredictor as Exported
        from openmaas.ml.compress.onnx_graph import FORMAT, META

        model = (directory / MAIN_FILE["onnx"]).read_bytes()
        try:
            exported = Exported(model)
        except InvalidFile:  # not ours, or not loadable: the generic path says which
            return False
        meta = exported.session.get_modelmeta().custom_metadata_map
        if meta.get(META["format"]) != FORMAT:  # pragma: no cover - Exported checks it
            return False
        self.exported = exported
        self.session = exported.session
        self.input = self.session.get_inputs()[0]
        self.outputs = [o.name for o in self.session.get_outputs()]
        # a bare binary LightGBM booster serves P(positive) as its predictions
        self.positive_only = meta.get("openmaas.predictions") == "probability"
        if exported.classes is not None and not self.positive_only:
            self.classes = [_plain(c) for c in exported.classes]
        return True

    @property
    def n_features(self) -> int | None:
        if self.exported is not None:
            return int(self.exported.n_features)
        shape = self.input.shape
        return shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None

    @property
    def feature_names(self) -> list[str] | None:
        return None if self.exported is None else list(self.exported.feature_names)

    def predict(self, X: Any) -> Output:
        if self.exported is not None:
            return self._predict_exported(X)
        X = np.asarray(X, dtype=self.dtype)
        results = self.session.run(None, {self.input.name: X})
        pred = np.asarray(results[0])
        proba = np.asarray(results[1]) if len(results) > 1 else None
        if proba is not None and proba.ndim == 2 and self.classes is None:
            self.classes = list(range(proba.shape[1]))
        if pred.ndim == 2 and pred.shape[1] == 1:
            pred = pred[:, 0]
        return Output(pred, proba)

    def _predict_exported(self, X: Any) -> Output:
        exported = self.exported
        if exported.classes is None:
            return Output(np.asarray(exported.predict(X)))
        proba = np.asarray(exported.predict_proba(X))
        if self.positive_only:
            return Output(np.ascontiguousarray(proba[:, -1]))
        return Output(exported.classes[np.argmax(proba, axis=1)], proba)


def load(
    flavor: str, directory: Path, names: list[str] | None = None, *, accelerate: bool = False
) -> Predictor:
    """The predictor of a version directory (``names``: the signature's input names;
    ``accelerate``: use a faster runtime where it gives the same answers)."""
    main_file(flavor)
    if not (directory / MAIN_FILE[flavor]).is_file():
        raise InvalidFile(f"a {flavor} model needs the file {MAIN_FILE[flavor]}")
    if flavor == "lightgbm":
        return LightGBMPredictor(directory, accelerate=accelerate)
    if flavor == "skops":
        return SkopsPredictor(directory)
    if flavor == "onnx":
        return OnnxPredictor(directory)
    if flavor == "pickle":
        return PicklePredictor(directory)
    return PipelinePredictor(directory, names, accelerate=accelerate)


def _float_matrix(X: Any, width: int) -> bool:
    """Whether ``X`` is what an accelerated model takes as is: a float64 ``[N, width]``
    array (anything else goes to the model's own code, with its checks and messages)."""
    return (
        isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] == width and X.dtype == np.float64
    )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
