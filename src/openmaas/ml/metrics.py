"""The metric catalog: every score a task can be evaluated by.

A :class:`Metric` is called as ``metric(y_true, y_pred, **kw) -> float``. Metrics
with ``needs_scores`` take scores or probabilities instead of hard predictions:

* binary ``roc_auc``/``average_precision``: a score per row (higher = positive),
  or an ``(n, 2)`` probability matrix; ``log_loss``: P(positive) per row or an
  ``(n, 2)`` matrix. Keyword ``pos_label`` names the positive class; without it,
  the positive class is 1/True for 0-1 labels, else the greater of the sorted
  labels (scikit-learn's convention). ``labels`` fixes the class order of
  ``log_loss``.
* multiclass ``log_loss``/``roc_auc_ovr``: an ``(n, classes)`` probability matrix
  whose columns follow the sorted labels, or ``labels``.
* recommendation ``recall@k``, ``ndcg@k``, ``hit_rate@k``, ``mrr@k``,
  ``precision@k``: ``y_true`` is a ``(users, items)`` relevance matrix (nonzero =
  relevant), ``y_pred`` a score matrix of the same shape, keyword ``mask`` an
  optional boolean matrix of candidate items (False, e.g. items seen in
  training, are never ranked nor counted as relevant). Users with no relevant
  item are left out of the mean, as RecBole does.

A metric undefined on the given values (one class only for ``roc_auc``, one row
for ``r2``) raises :class:`~openmaas.errors.InvalidInput` rather than returning NaN.
Multitarget tasks pass ``(n, targets)`` matrices and get the mean over targets
of the per-target score. Names are for users (see :func:`get_metric`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from openmaas.errors import InvalidInput

if TYPE_CHECKING:
    from openmaas.ml.tasks import TaskType

__all__ = [
    "NUMERIC_METRICS",
    "Direction",
    "Metric",
    "default_metrics",
    "get_metric",
    "metrics_for",
]

Direction = Literal["maximize", "minimize"]
MetricFn = Callable[..., float]


@dataclass(frozen=True)
class Metric:
    """One catalog entry; ``k`` is the cutoff of a ranking metric (``ndcg@10`` -> 10)."""

    name: str
    task_types: frozenset[str]
    direction: Direction
    needs_scores: bool
    description: str
    fn: MetricFn = field(repr=False, compare=False)
    k: int | None = None

    @property
    def base_name(self) -> str:
        """The name without its cutoff: ``ndcg`` for ``ndcg@10``."""
        return self.name.partition("@")[0]

    @property
    def greater_is_better(self) -> bool:
        return self.direction == "maximize"

    def __call__(self, y_true: npt.ArrayLike, y_pred: npt.ArrayLike, **kw: Any) -> float:
        if self.k is not None:
            kw["k"] = self.k
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", UndefinedMetricWarning)
                return float(self.fn(y_true, y_pred, **kw))
        except InvalidInput:
            raise
        except (ValueError, UndefinedMetricWarning) as e:
            raise InvalidInput(
                f"cannot compute {self.name}: {e}", details={"metric": self.name}
            ) from e


# -- classification ---------------------------------------------------------------------


def _positive(y_true: npt.ArrayLike, pos_label: Any, *more: npt.ArrayLike) -> Any:
    if pos_label is not None:
        return pos_label
    labels = np.unique(np.concatenate([np.asarray(y).ravel() for y in (y_true, *more)]))
    if labels.dtype.kind in "biuf" and set(labels.tolist()) <= {0, 1}:
        return True if labels.dtype.kind == "b" else 1
    return labels[-1].item()


def _positive_scores(y_score: npt.ArrayLike) -> npt.NDArray[np.float64]:
    scores = np.asarray(y_score, dtype=np.float64)
    if scores.ndim == 2 and scores.shape[1] == 2:
        return scores[:, 1]
    return scores


def roc_auc(y_true: npt.ArrayLike, y_score: npt.ArrayLike, pos_label: Any = None) -> float:
    positive = np.asarray(y_true) == _positive(y_true, pos_label)
    return float(skm.roc_auc_score(positive, _positive_scores(y_score)))


def average_precision(
    y_true: npt.ArrayLike, y_score: npt.ArrayLike, pos_label: Any = None
) -> float:
    positive = np.asarray(y_true) == _positive(y_true, pos_label)
    return float(skm.average_precision_score(positive, _positive_scores(y_score)))


def log_loss(y_true: npt.ArrayLike, y_proba: npt.ArrayLike, labels: Any = None) -> float:
    return float(skm.log_loss(y_true, y_proba, labels=labels))


def accuracy(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    true, pred = np.asarray(y_true), np.asarray(y_pred)
    if true.ndim == 2:
        return float(
            np.mean([skm.accuracy_score(true[:, j], pred[:, j]) for j in range(true.shape[1])])
        )
    return float(skm.accuracy_score(true, pred))


def f1(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, pos_label: Any = None) -> float:
    positive = _positive(y_true, pos_label, y_pred)
    return float(skm.f1_score(y_true, y_pred, pos_label=positive, zero_division=0.0))


def f1_macro(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    return float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0.0))


def balanced_accuracy(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    return float(skm.balanced_accuracy_score(y_true, y_pred))


def roc_auc_ovr(y_true: npt.ArrayLike, y_proba: npt.ArrayLike, labels: Any = None) -> float:
    return float(skm.roc_auc_score(y_true, y_proba, multi_class="ovr", labels=labels))


# -- regression (multi-output: mean over targets) ---------------------------------------


def rmse(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    return float(skm.root_mean_squared_error(y_true, y_pred))


def mae(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    return float(skm.mean_absolute_error(y_true, y_pred))


def r2(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    return float(skm.r2_score(y_true, y_pred))


def mape(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Mean absolute percentage error as a fraction (0.1 = 10 %), as scikit-learn."""
    return float(skm.mean_absolute_percentage_error(y_true, y_pred))


# -- ranking ----------------------------------------------------------------------------


def _top_k_hits(
    y_true: npt.ArrayLike, y_score: npt.ArrayLike, k: int, mask: npt.ArrayLike | None
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """Relevance of each user's top ``k`` items, best first, and each user's #relevant.

    Rows of users without a relevant item are dropped. Ties are broken by item
    order within the top k; at the cutoff, arbitrarily but deterministically.
    """
    relevant = np.asarray(y_true) > 0
    scores = np.asarray(y_score, dtype=np.float64)
    if relevant.ndim != 2 or relevant.shape != scores.shape:
        raise InvalidInput(
            "ranking metrics need relevance and score matrices of one shape (users, items), "
            f"got {relevant.shape} and {scores.shape}"
        )
    if np.isnan(scores).any():
        raise InvalidInput("ranking scores contain NaN")
    if mask is not None:
        candidates = np.asarray(mask, dtype=bool)
        if candidates.shape != scores.shape:
            raise InvalidInput(f"mask has shape {candidates.shape}, expected {scores.shape}")
        relevant = relevant & candidates
        scores = np.where(candidates, scores, -np.inf)
    n_relevant = relevant.sum(axis=1)
    keep = n_relevant > 0
    if not keep.any():
        raise InvalidInput("no user has a relevant item, so ranking metrics are undefined")
    relevant, scores, n_relevant = relevant[keep], scores[keep], n_relevant[keep]
    k = min(k, scores.shape[1])
    if k < scores.shape[1]:
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top.sort(axis=1)
    else:
        top = np.broadcast_to(np.arange(k), scores.shape)
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    return np.take_along_axis(relevant, top, axis=1), n_relevant


def hit_rate_at_k(
    y_true: npt.ArrayLike, y_score: npt.ArrayLike, *, k: int, mask: npt.ArrayLike | None = None
) -> float:
    """Share of users with at least one relevant item in their top k."""
    hits, _ = _top_k_hits(y_true, y_score, k, mask)
    return float(hits.any(axis=1).mean())


def recall_at_k(
    y_true: npt.ArrayLike, y_score: npt.ArrayLike, *, k: int, mask: npt.ArrayLike | None = None
) -> float:
    """Mean over users of hits in the top k / #relevant."""
    hits, n_relevant = _top_k_hits(y_true, y_score, k, mask)
    return float((hits.sum(axis=1) / n_relevant).mean())


def precision_at_k(
    y_true: npt.ArrayLike, y_score: npt.ArrayLike, *, k: int, mask: npt.ArrayLike | None = None
) -> float:
    """Mean over users of hits in the top k / k (k as asked, even past the item count)."""
    hits, _ = _top_k_hits(y_true, y_score, k, mask)
    return float((hits.sum(axis=1) / k).mean())


def mrr_at_k(
    y_true: npt.ArrayLike, y_score: npt.ArrayLike, *, k: int, mask: npt.ArrayLike | None = None
) -> float:
    """Mean over users of 1 / rank of the first relevant item in the top k (0 if none)."""
    hits, _ = _top_k_hits(y_true, y_score, k, mask)
    first = hits.argmax(axis=1)
    return float(np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0).mean())


def ndcg_at_k(
    y_true: npt.ArrayLike, y_score: npt.ArrayLike, *, k: int, mask: npt.ArrayLike | None = None
) -> float:
    """Mean NDCG with binary relevance; the ideal DCG ranks min(k, #relevant) hits first."""
    hits, n_relevant = _top_k_hits(y_true, y_score, k, mask)
    discount = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    dcg = hits @ discount
    ideal = np.cumsum(discount)[np.minimum(n_relevant, hits.shape[1]) - 1]
    return float((dcg / ideal).mean())


# -- catalog ----------------------------------------------------------------------------

_CLASSIFICATION = frozenset({"binary", "multiclass"})


def _m(
    name: str, types: set[str], direction: Direction, scores: bool, fn: MetricFn, about: str
) -> Metric:
    return Metric(name, frozenset(types), direction, scores, about, fn)


_FIXED: dict[str, Metric] = {
    m.name: m
    for m in [
        _m("roc_auc", {"binary", "anomaly"}, "maximize", True, roc_auc, "area under the ROC curve"),
        _m("log_loss", set(_CLASSIFICATION), "minimize", True, log_loss, "cross-entropy"),
        _m(
            "accuracy",
            {"binary", "multiclass", "multitarget", "sequence"},
            "maximize",
            False,
            accuracy,
            "share of correct labels (multitarget: mean over targets)",
        ),
        _m("f1", {"binary"}, "maximize", False, f1, "F1 of the positive class"),
        _m(
            "balanced_accuracy",
            set(_CLASSIFICATION),
            "maximize",
            False,
            balanced_accuracy,
            "mean recall over classes",
        ),
        _m(
            "average_precision",
            {"binary", "anomaly"},
            "maximize",
            True,
            average_precision,
            "area under the precision-recall curve",
        ),
        _m("f1_macro", {"multiclass"}, "maximize", False, f1_macro, "mean F1 over classes"),
        _m(
            "roc_auc_ovr",
            {"multiclass"},
            "maximize",
            True,
            roc_auc_ovr,
            "mean one-vs-rest ROC AUC over classes",
        ),
        _m(
            "rmse",
            {"regression", "multitarget", "sequence"},
            "minimize",
            False,
            rmse,
            "root mean squared error (multitarget: mean over targets)",
        ),
        _m(
            "mae",
            {"regression", "multitarget", "sequence"},
            "minimize",
            False,
            mae,
            "mean absolute error (multitarget: mean over targets)",
        ),
        _m(
            "r2",
            {"regression", "multitarget"},
            "maximize",
            False,
            r2,
            "coefficient of determination (multitarget: mean over targets)",
        ),
        _m(
            "mape",
            {"regression", "sequence"},
            "minimize",
            False,
            mape,
            "mean absolute percentage error, as a fraction",
        ),
    ]
}

_RANKING: dict[str, tuple[MetricFn, str]] = {
    "recall": (recall_at_k, "hits in the top k / #relevant"),
    "ndcg": (ndcg_at_k, "normalised discounted cumulative gain in the top k"),
    "hit_rate": (hit_rate_at_k, "share of users with a hit in the top k"),
    "mrr": (mrr_at_k, "reciprocal rank of the first hit in the top k"),
    "precision": (precision_at_k, "hits in the top k / k"),
}
_RANKING_NAME = re.compile(r"(?P<base>[a-z_]+)@(?P<k>[1-9][0-9]*)")

NUMERIC_METRICS = frozenset({"rmse", "mae", "r2", "mape"})
"""Metrics that need numeric targets."""

_DEFAULTS: dict[str, list[str]] = {
    "binary": ["roc_auc", "log_loss", "accuracy"],
    "multiclass": ["accuracy", "log_loss", "f1_macro"],
    "regression": ["rmse", "mae", "r2"],
    "multitarget": ["rmse", "mae", "r2"],
    "anomaly": ["roc_auc", "average_precision"],
    "recommendation": ["ndcg@10", "recall@10", "mrr@10", "hit_rate@10"],
    "sequence": ["rmse", "mae"],
}


def _all_names() -> list[str]:
    return [*_FIXED, *(f"{base}@k" for base in _RANKING)]


def get_metric(name: str) -> Metric:
    """The metric called ``name``; ranking metrics carry a cutoff, as in ``ndcg@10``."""
    if name in _FIXED:
        return _FIXED[name]
    match = _RANKING_NAME.fullmatch(name)
    if match is not None and match["base"] in _RANKING:
        fn, about = _RANKING[match["base"]]
        return Metric(
            name, frozenset({"recommendation"}), "maximize", True, about, fn, int(match["k"])
        )
    if name in _RANKING:
        raise InvalidInput(
            f"metric {name!r} needs a cutoff, e.g. '{name}@10'", details={"metric": name}
        )
    valid = _all_names()
    raise InvalidInput(
        f"unknown metric {name!r}; valid: {', '.join(valid)} (k a positive integer)",
        details={"metric": name, "valid": valid},
    )


def metrics_for(task_type: TaskType | str) -> list[str]:
    """Names of the metrics for ``task_type``; ranking ones as templates (``ndcg@k``)."""
    if task_type not in _DEFAULTS:
        raise InvalidInput(
            f"unknown task type {task_type!r}; valid: {', '.join(_DEFAULTS)}",
            details={"task_type": task_type, "valid": list(_DEFAULTS)},
        )
    if task_type == "recommendation":
        return [f"{base}@k" for base in _RANKING]
    return [name for name, metric in _FIXED.items() if task_type in metric.task_types]


def default_metrics(task_type: TaskType | str) -> list[str]:
    """The metrics a task of ``task_type`` gets when it names none; the first is primary."""
    metrics_for(task_type)
    return list(_DEFAULTS[task_type])
