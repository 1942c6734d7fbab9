"""Live quality from feedback labels: mergeable per-window accumulators.

Feedback arrives as (label, prediction) pairs joined by ``request_id``; these
accumulators keep only sums and counts, so replicas' windows add up and the
state never grows. A label the model has no class for is counted in
``unknown`` and left out of the scores rather than failing the feedback;
regression rows with a non-finite label or prediction are counted in
``skipped``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from openmaas.errors import InvalidInput
from openmaas.ml.monitoring.moments import Moments
from openmaas.ml.monitoring.reference import category_key

PROBA_FLOOR = 1e-15


class ClassificationQuality:
    """Confusion counts, accuracy, log loss and Brier score of a classifier's window.

    ``classes`` are the model's classes in its probability column order. The
    Brier score is the multi-class one, ``sum_k (p_k - [y = k])^2`` averaged
    over rows, i.e. twice scikit-learn's binary ``brier_score_loss``.
    """

    def __init__(self, classes: Sequence[Any]) -> None:
        self.classes = tuple(category_key(c) for c in classes)
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise InvalidInput("a classifier needs at least two distinct classes")
        self._order = np.argsort(self.classes)
        self._sorted = np.asarray(self.classes, dtype=str)[self._order]
        k = len(self.classes)
        self.confusion = np.zeros((k, k), dtype=np.int64)
        self.unknown = 0
        self.proba_rows = 0
        self.log_loss_sum = 0.0
        self.brier_sum = 0.0

    def add(
        self,
        y_true: npt.ArrayLike,
        y_pred: npt.ArrayLike | None = None,
        proba: npt.ArrayLike | None = None,
    ) -> None:
        """Count a batch of labels against predicted classes and/or probabilities."""
        t = self._indices(y_true)
        k = len(self.classes)
        p_mat = None if proba is None else np.asarray(proba, dtype=np.float64)
        if p_mat is not None and p_mat.shape != (t.size, k):
            raise InvalidInput(f"probabilities have shape {p_mat.shape}, expected ({t.size}, {k})")
        if y_pred is not None:
            p = self._indices(y_pred)
        elif p_mat is not None:
            p = p_mat.argmax(axis=1)
        else:
            raise InvalidInput("feedback needs predicted classes or probabilities")
        if p.size != t.size:
            raise InvalidInput(f"{t.size} labels but {p.size} predictions")
        known = (t >= 0) & (p >= 0)
        self.unknown += int((~known).sum())
        t, p = t[known], p[known]
        self.confusion += np.bincount(t * k + p, minlength=k * k).reshape(k, k)
        if p_mat is not None:
            rows = p_mat[known]
            truth = np.zeros_like(rows)
            truth[np.arange(t.size), t] = 1.0
            self.log_loss_sum += float(-np.log(np.clip(rows[truth == 1], PROBA_FLOOR, 1)).sum())
            self.brier_sum += float(np.square(rows - truth).sum())
            self.proba_rows += int(t.size)

    def _indices(self, labels: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Each label's class index, -1 for a label that is no class."""
        keys = np.asarray(labels, dtype=object).astype(str).ravel()
        pos = np.minimum(np.searchsorted(self._sorted, keys), self._sorted.size - 1)
        return np.where(self._sorted[pos] == keys, self._order[pos], -1)

    def merge(self, other: ClassificationQuality) -> None:
        if other.classes != self.classes:
            raise InvalidInput("cannot merge quality windows of different classes")
        self.confusion += other.confusion
        self.unknown += other.unknown
        self.proba_rows += other.proba_rows
        self.log_loss_sum += other.log_loss_sum
        self.brier_sum += other.brier_sum

    def result(self) -> dict[str, Any]:
        n = int(self.confusion.sum())
        pr = self.proba_rows
        return {
            "rows": n,
            "unknown": self.unknown,
            "accuracy": float(np.trace(self.confusion)) / n if n else None,
            "log_loss": self.log_loss_sum / pr if pr else None,
            "brier": self.brier_sum / pr if pr else None,
            "classes": list(self.classes),
            "confusion": self.confusion.tolist(),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "confusion": self.confusion.tolist(),
            "unknown": self.unknown,
            "proba_rows": self.proba_rows,
            "log_loss_sum": self.log_loss_sum,
            "brier_sum": self.brier_sum,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClassificationQuality:
        q = cls(d["classes"])
        q.confusion = np.asarray(d["confusion"], dtype=np.int64).reshape(q.confusion.shape)
        q.unknown, q.proba_rows = int(d["unknown"]), int(d["proba_rows"])
        q.log_loss_sum, q.brier_sum = float(d["log_loss_sum"]), float(d["brier_sum"])
        return q


class RegressionQuality:
    """Count, MAE, RMSE, bias and R² of a regressor's window."""

    def __init__(self) -> None:
        self.skipped = 0
        self.abs_sum = 0.0
        self.sq_sum = 0.0
        self.err_sum = 0.0
        self.labels = Moments()

    @property
    def count(self) -> int:
        return self.labels.count

    def add(self, y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> None:
        y = np.asarray(y_true, dtype=np.float64).ravel()
        p = np.asarray(y_pred, dtype=np.float64).ravel()
        if y.size != p.size:
            raise InvalidInput(f"{y.size} labels but {p.size} predictions")
        ok = np.isfinite(y) & np.isfinite(p)
        self.skipped += int(y.size - ok.sum())
        err = p[ok] - y[ok]
        self.abs_sum += float(np.abs(err).sum())
        self.sq_sum += float(np.square(err).sum())
        self.err_sum += float(err.sum())
        self.labels.add(y[ok])

    def merge(self, other: RegressionQuality) -> None:
        self.skipped += other.skipped
        self.abs_sum += other.abs_sum
        self.sq_sum += other.sq_sum
        self.err_sum += other.err_sum
        self.labels.merge(other.labels)

    def result(self) -> dict[str, Any]:
        n = self.count
        return {
            "rows": n,
            "skipped": self.skipped,
            "mae": self.abs_sum / n if n else None,
            "rmse": float(np.sqrt(self.sq_sum / n)) if n else None,
            "bias": self.err_sum / n if n else None,
            "r2": 1.0 - self.sq_sum / self.labels.m2 if n > 1 and self.labels.m2 > 0 else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "skipped": self.skipped,
            "sums": [self.abs_sum, self.sq_sum, self.err_sum],
            "labels": self.labels.to_list(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RegressionQuality:
        q = cls()
        q.skipped = int(d["skipped"])
        q.abs_sum, q.sq_sum, q.err_sum = (float(v) for v in d["sums"])
        q.labels = Moments.from_list(d["labels"])
        return q
