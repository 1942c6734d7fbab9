"""A model version loaded on this machine (see ``client.models.load``).

Inputs are checked against the version's signature before the model sees them:
a DataFrame is matched by column name (extra columns are ignored, missing ones
named in the error), an array by column count, so a model never silently reads
columns in the wrong order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from openmaas.client.models import ModelVersion
from openmaas.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

    from openmaas.ml.flavors import Predictor

_SHOWN = 10  # column names quoted in an error message


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


class LocalModel:
    """A version's model, loaded here: ``predict(X)``, and ``predict_proba(X)`` for classifiers.

    ``X`` is a DataFrame with the signature's columns (``input_names``) or a
    2-D array with them in that order.
    """

    def __init__(self, version: ModelVersion, directory: Path, predictor: Predictor) -> None:
        self.version = version
        self.directory = directory
        self.predictor = predictor
        self.input_names = version.input_names
        # A pipeline's preprocessing, and an estimator fitted on a DataFrame, want names.
        self._frame_input = predictor.flavor == "pipeline" or (
            predictor.flavor in ("skops", "pickle") and predictor.feature_names is not None
        )

    @property
    def flavor(self) -> str:
        return str(self.version.flavor)

    @property
    def classes(self) -> list[Any] | None:
        """The class labels, in the order of ``predict_proba``'s columns (None: a regressor,
        or a bare model that gives one score per row; an ONNX model's, until it predicted)."""
        classes = self.version.classes
        return classes if classes is not None else self.predictor.classes

    @property
    def _scores_classes(self) -> bool:
        # An ONNX classifier's second output holds the probabilities; its classes are
        # known once it has predicted.
        onnx_scores = self.flavor == "onnx" and len(getattr(self.predictor, "outputs", [])) > 1
        return self.classes is not None or onnx_scores

    def __repr__(self) -> str:
        return f"LocalModel({self.version.ref!r}, flavor={self.flavor!r})"

    def predict(self, X: pd.DataFrame | Any) -> np.ndarray:
        """Predictions, one per row: labels of a classifier, values of a regressor (a bare
        LightGBM binary model gives the probability of class 1, as it does everywhere)."""
        return np.asarray(self.predictor.predict(self._inputs(X)).predictions)

    @property
    def predict_proba(self) -> Callable[[pd.DataFrame | Any], np.ndarray]:
        """Class probabilities, one column per ``classes`` entry (classifiers only)."""
        if not self._scores_classes:
            raise AttributeError(f"{self.version.ref} is not a classifier: it has no predict_proba")
        return self._predict_proba

    def _predict_proba(self, X: pd.DataFrame | Any) -> np.ndarray:
        out = self.predictor.predict(self._inputs(X))
        if out.probabilities is None:
            raise InvalidInput(f"{self.version.ref} gives classes but no probabilities")
        return np.asarray(out.probabilities)

    def _inputs(self, X: Any) -> Any:
        import pandas as pd

        names = self.input_names
        if isinstance(X, pd.DataFrame):
            missing = [n for n in names if n not in X.columns]
            if missing:
                raise InvalidInput(
                    f"the input lacks {len(missing)} column(s) the model reads: {_names(missing)}",
                    details={"missing": missing},
                )
            frame = X[names]
            return frame if self._frame_input else self._matrix(frame)
        array = np.asarray(X)
        if array.ndim != 2 or array.shape[1] != len(names):
            raise InvalidInput(
                f"give a DataFrame, or a 2-D array with {len(names)} columns "
                f"({_names(names)}); got an array of shape {array.shape}"
            )
        return pd.DataFrame(array, columns=names) if self._frame_input else self._matrix(array)

    def _matrix(self, values: Any) -> np.ndarray:
        try:
            return np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise InvalidInput(f"a {self.flavor} model reads numbers only: {e}") from None


__all__ = ["LocalModel"]
