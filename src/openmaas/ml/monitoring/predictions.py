"""The distribution of a version's predictions over a window: mergeable, bounded.

Predictions are binned like a feature, against a reference built from what
the model should predict: the training target (from the dataset profile, via
:meth:`Reference.from_profile` with ``features=[target]``), the model's own
predictions on its validation data (:meth:`FeatureReference.from_values`), or
its classes with their training counts (:meth:`FeatureReference.from_counts`).
So the same PSI/KS rule reports prediction drift (:meth:`drift`), and the
counts are the histogram a chart draws. Regression windows also keep count,
mean, spread and range (:class:`Moments`); classifier windows with
probabilities keep each class's summed probability.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from openmaas.errors import InvalidInput
from openmaas.ml.monitoring.drift import DriftRule, FeatureDrift, feature_drift
from openmaas.ml.monitoring.moments import Moments
from openmaas.ml.monitoring.reference import FeatureReference, Reference
from openmaas.ml.monitoring.window import FeatureWindow


class PredictionWindow:
    """Predicted values (or classes) of one window, binned against a reference."""

    def __init__(self, reference: FeatureReference) -> None:
        self.reference = reference
        self._window = FeatureWindow(Reference([reference]))
        self.moments = Moments()
        k = len(reference.categories)
        self.proba_sums = np.zeros(k) if reference.kind == "categorical" else np.zeros(0)
        self.proba_rows = 0

    @property
    def rows(self) -> int:
        return self._window.rows

    def add(self, predictions: npt.ArrayLike, proba: npt.ArrayLike | None = None) -> None:
        """Count a batch of predictions; ``proba`` is ``(n, classes)`` in sorted class order."""
        values = np.asarray(predictions)
        if values.ndim != 1:
            raise InvalidInput(f"predictions must be one value per row, got shape {values.shape}")
        self._window.add({self.reference.name: values})
        if self.reference.kind == "numeric":
            self.moments.add(values.astype(np.float64))
        if proba is not None:
            self._add_proba(np.asarray(proba, dtype=np.float64), values.size)

    def _add_proba(self, proba: npt.NDArray[np.float64], n: int) -> None:
        if proba.shape != (n, self.proba_sums.size):
            raise InvalidInput(
                f"probabilities have shape {proba.shape}, expected ({n}, {self.proba_sums.size})"
            )
        self.proba_sums += proba.sum(axis=0)
        self.proba_rows += n

    def merge(self, other: PredictionWindow) -> None:
        """Add another replica's (or window's) predictions."""
        self._window.merge(other._window)
        self.moments.merge(other.moments)
        self.proba_sums += other.proba_sums
        self.proba_rows += other.proba_rows

    def drift(self, rule: DriftRule | None = None) -> FeatureDrift:
        """PSI and KS (or chi-square) of the predictions against the reference."""
        counts, missing = self._window.feature_counts(0)
        return feature_drift(self.reference, counts, missing, rule or DriftRule())

    def summary(self) -> dict[str, Any]:
        """What a chart or table shows: the histogram or class counts, and moments."""
        counts, missing = self._window.feature_counts(0)
        out: dict[str, Any] = {"rows": self.rows, "missing": missing, "counts": counts.tolist()}
        if self.reference.kind == "numeric":
            out["edges"] = self.reference.edges.tolist()
            m, var = self.moments, self.moments.variance
            out["mean"] = m.mean if m.count else None
            out["std"] = None if var is None else float(np.sqrt(var))
            out["min"], out["max"] = m.min, m.max
        else:
            out["classes"] = [*self.reference.categories, "other"]
            if self.proba_rows:
                mean = self.proba_sums / self.proba_rows
                out["mean_proba"] = dict(zip(self.reference.categories, mean.tolist(), strict=True))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self._window.to_dict(),
            "moments": self.moments.to_list(),
            "proba_sums": self.proba_sums.tolist(),
            "proba_rows": self.proba_rows,
        }

    @classmethod
    def from_dict(cls, reference: FeatureReference, d: Mapping[str, Any]) -> PredictionWindow:
        w = cls(reference)
        w._window = FeatureWindow.from_dict(w._window.reference, d["window"])
        w.moments = Moments.from_list(d["moments"])
        w.proba_sums = np.asarray(d["proba_sums"], dtype=np.float64)
        w.proba_rows = int(d["proba_rows"])
        return w
