"""Task metrics on one part of a split, and their summary over folds.

A metric that is undefined on a part (one class only for ``roc_auc``, no
relevant item for ``ndcg@10``) scores ``None`` there, with a log line, rather
than failing the run; summaries ignore such parts.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from openmaas.errors import InvalidInput
from openmaas.ml.metrics import Metric, get_metric

__all__ = ["Scores", "score_predictions", "summarise"]

Scores = dict[str, float | None]
Log = Callable[[str], None]


def _kwargs(metric: Metric, classes: np.ndarray | None) -> dict[str, Any]:
    """``labels`` (every class, so a part missing one still scores) and, for two classes,
    ``pos_label`` (the last class, whose probability column the scores are)."""
    if classes is None:
        return {}
    accepted = inspect.signature(metric.fn).parameters
    out: dict[str, Any] = {}
    if "labels" in accepted:
        out["labels"] = classes.tolist()
    if "pos_label" in accepted and len(classes) == 2:
        out["pos_label"] = (
            classes[-1].item() if isinstance(classes[-1], np.generic) else classes[-1]
        )
    return out


def score_predictions(
    names: Sequence[str],
    y_true: Any,
    y_pred: Any,
    y_score: Any,
    *,
    classes: np.ndarray | None = None,
    log: Log = lambda _: None,
) -> Scores:
    """Every metric in ``names``: scores (``needs_scores``) or predictions against ``y_true``."""
    out: Scores = {}
    for name in names:
        metric = get_metric(name)
        values = y_score if metric.needs_scores else y_pred
        if values is None:
            out[name] = None
            log(f"{name}: this algorithm gives no {'scores' if metric.needs_scores else 'labels'}")
            continue
        out[name] = guarded(metric, y_true, values, log, **_kwargs(metric, classes))
    return out


def guarded(metric: Metric, y_true: Any, values: Any, log: Log, **kw: Any) -> float | None:
    """``metric(y_true, values, **kw)``, or None (logged) when undefined or not finite."""
    try:
        value = metric(y_true, values, **kw)
    except InvalidInput as e:
        log(f"{metric.name} is undefined here: {e.message}")
        return None
    if not math.isfinite(value):
        log(f"{metric.name} is {value} here")
        return None
    return value


def summarise(per_fold: Sequence[Scores], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{metric: {"mean", "std", "folds"}}``; std over folds (population), None with
    fewer than two defined folds; mean None when no fold defines the metric."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        folds = [scores.get(name) for scores in per_fold]
        defined = [v for v in folds if v is not None]
        mean = float(np.mean(defined)) if defined else None
        std = float(np.std(defined)) if len(defined) > 1 else None
        out[name] = {"mean": mean, "std": std, "folds": folds}
    return out
