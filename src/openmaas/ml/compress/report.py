"""``compression_report``: what a compression gained (size, latency) and what it cost (metric).

Latency is the median of a few timed calls on one batch, divided by its rows,
with every thread pool (BLAS/OpenMP, torch) held to one thread: per-row cost
on one core is what decides how many replicas an endpoint needs, and the
median shrugs off a neighbour's burst on a shared machine. A one-row call is
timed too, since a single request pays fixed costs a batch spreads out.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from openmaas.errors import InvalidInput
from openmaas.ml.metrics import Metric, get_metric

__all__ = ["artifact_size", "compression_report", "latency_per_row"]

Predict = Callable[[Any], Any]


def artifact_size(artifact: bytes | str | Path) -> int:
    """Bytes of a serialised model, a file, or every file under a directory."""
    if isinstance(artifact, bytes):
        return len(artifact)
    path = Path(artifact)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def latency_per_row(predict: Predict, X: Any, *, repeats: int = 5) -> float:
    """Median seconds per row of ``predict(X)`` over ``repeats`` timed calls (after a warm-up)."""
    rows = len(X)
    if rows == 0:
        raise InvalidInput("cannot time predictions on an empty batch")
    with single_threaded():
        predict(X)
        times = []
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            predict(X)
            times.append(time.perf_counter() - start)
    return statistics.median(times) / rows


def compression_report(
    native_predict: Predict,
    compressed_predict: Predict,
    X_eval: Any,
    y_eval: Any,
    metric: str | Metric,
    size_before: int,
    size_after: int,
    *,
    batch_rows: int = 1000,
    repeats: int = 5,
    **metric_kw: Any,
) -> dict[str, Any]:
    """Size, latency per row and ``metric`` of a model before and after compression.

    Both predict functions take ``X_eval`` (or its first rows) and return what
    ``metric`` (a catalog name or :class:`~openmaas.ml.metrics.Metric`) scores:
    probabilities or scores for ``roc_auc``/``log_loss``, labels for
    ``accuracy``, values for regression. ``metric_kw`` go to the metric
    (``pos_label``, ``labels``). ``change`` is after minus before; whether
    that is good depends on ``direction``. Returns a JSON-ready dict.
    """
    scorer = get_metric(metric) if isinstance(metric, str) else metric
    batch = X_eval[:batch_rows]
    one = X_eval[:1]
    before = scorer(y_eval, native_predict(X_eval), **metric_kw)
    after = scorer(y_eval, compressed_predict(X_eval), **metric_kw)
    latency = {
        "before": latency_per_row(native_predict, batch, repeats=repeats),
        "after": latency_per_row(compressed_predict, batch, repeats=repeats),
    }
    single = {
        "before": latency_per_row(native_predict, one, repeats=repeats * 4),
        "after": latency_per_row(compressed_predict, one, repeats=repeats * 4),
    }
    return {
        "size_bytes": {
            "before": int(size_before),
            "after": int(size_after),
            "ratio": _ratio(size_before, size_after),
        },
        "latency_per_row_s": {**latency, "speedup": _ratio(latency["before"], latency["after"])},
        "latency_one_row_s": {**single, "speedup": _ratio(single["before"], single["after"])},
        "latency_batch_rows": len(batch),
        "metric": {
            "name": scorer.name,
            "direction": scorer.direction,
            "before": float(before),
            "after": float(after),
            "change": float(after - before),
        },
        "eval_rows": len(X_eval),
    }


def _ratio(before: float, after: float) -> float | None:
    return float(before / after) if after > 0 else None


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """One BLAS/OpenMP thread (LightGBM, scikit-learn) and, if loaded, one torch thread."""
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=1):
        if torch is not None:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(before)
