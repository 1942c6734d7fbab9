"""A replica's monitoring: drift, prediction distribution, live quality, Prometheus totals.

The request path only appends: ``observe`` keeps a reference to the request's
input and output in a buffer (up to ``max_rows`` rows per sync period; what is
past that is counted as ``skipped``, so a flood costs nothing more) and
remembers the answer for a later label; ``label`` checks the label and
buffers it. The sync thread (``collect``) bins the buffered rows in a few
vectorised calls per endpoint, version and window, and hands the runtime
mergeable states (``domain.monitoring``) to add to ``endpoint_stats``.

The request log is sampled by the runtime (``monitoring.sample_rate``);
here it is bounded too: every ``prune_every_s`` the oldest entries past
``log_size`` per endpoint are deleted.

Labels are scored against the prediction this replica remembers: the last
``remember_rows`` rows answered (about ``remember_requests`` requests at
most). A label for a request it forgot or another replica answered counts as
``unmatched``.

The Prometheus totals are this replica's since it started, as Prometheus
expects of a scraped process; they are filled from the runtime's per-window
counters on each sync, so the request path pays nothing for them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import select

from openmaas.domain.context import Platform
from openmaas.domain.monitoring import VersionReference, prune_records, reference_for
from openmaas.errors import InvalidInput
from openmaas.ml.monitoring import (
    ClassificationQuality,
    FeatureWindow,
    PredictionWindow,
    RegressionQuality,
)
from openmaas.ml.monitoring.reference import category_key
from openmaas.store.metadata.tables import ModelVersion

log = logging.getLogger("openmaas.serving.monitor")
Key = tuple[int, int, datetime]


def window_start(ts: float, length: float) -> datetime:
    return datetime.fromtimestamp(ts - ts % length, UTC)


class _Version:
    """A deployed version as the monitor sees it: its reference and column positions."""

    def __init__(self, ref: VersionReference, names: list[str], classes: list[Any] | None):
        self.ref = ref
        feats = ref.features
        self.columns = list(feats.names) if feats is not None else []
        pos = {n: i for i, n in enumerate(names)}
        self.positions = [pos.get(c, -1) for c in self.columns]
        self.classes = classes
        # the reference keeps classes sorted by key; the model's probabilities are in its order
        self.proba_order = (
            np.argsort(np.asarray([category_key(c) for c in classes], dtype=str), kind="stable")
            if classes
            else None
        )


class Monitor:
    def __init__(
        self,
        platform: Platform,
        *,
        window_s: float = 60.0,
        max_rows: int = 5_000,
        remember_rows: int = 100_000,
        remember_requests: int = 20_000,
        log_size: int = 10_000,
        prune_every_s: float = 60.0,
    ) -> None:
        self.platform = platform
        self.window_s = window_s
        self._window: tuple[float, datetime] = (-1.0, window_start(0.0, window_s))
        self.max_rows = max_rows
        self.remember_rows = remember_rows
        self.remember_requests = remember_requests
        self.log_size = log_size
        self.prune_every_s = prune_every_s
        self._pruned = time.monotonic()
        self.versions: dict[int, _Version] = {}
        self.names: dict[int, str] = {}
        self._buffer: list[tuple[Key, Any, Any, Any]] = []
        self._buffered = 0
        self._labels: list[tuple[Key, Any, Any, Any]] = []
        self._counts: dict[Key, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._recent: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        self._recent_rows = 0
        self._lock = threading.Lock()
        self._totals: dict[tuple[int, int], list[Any]] = {}

    def window(self) -> datetime:
        """The start of the current window (the key of every per-window state); the
        datetime is made once per window, not per request."""
        ts = time.time()
        start = ts - ts % self.window_s
        if start != self._window[0]:
            self._window = (start, window_start(ts, self.window_s))
        return self._window[1]

    # Deployments (sync thread) -------------------------------------------------------

    def refresh(self, names: Mapping[int, str], predictors: Mapping[int, Any]) -> None:
        """Build the reference of each newly deployed version; forget undeployed ones."""
        self.names = dict(names)
        for version_id in list(self.versions):
            if version_id not in predictors:
                del self.versions[version_id]
        new = [v for v in predictors if v not in self.versions]
        if not new:
            return
        with self.platform.store.read() as s:
            rows = list(s.scalars(select(ModelVersion).where(ModelVersion.id.in_(new))))
        for row in rows:
            try:
                ref = reference_for(self.platform, row)
            except Exception:  # serve without monitoring rather than not at all
                log.exception("no monitoring reference for model version %s", row.id)
                continue
            names_in = [c["name"] for c in (row.signature or {}).get("inputs", [])]
            classes = getattr(predictors[row.id], "classes", None)
            self.versions[row.id] = _Version(ref, names_in, list(classes) if classes else None)

    # The request path ----------------------------------------------------------------

    def observe(
        self,
        endpoint_id: int,
        version: int,
        X: Any,
        out: Any,
        request_id: str,
        window: datetime | None = None,
    ) -> None:
        """Keep a request's rows for the sync thread and its answer for a later label
        (``window``: the current window, if the caller has it already)."""
        if version not in self.versions:
            return
        n = len(out.predictions)
        key = (endpoint_id, version, window or self.window())
        if self._buffered + n <= self.max_rows:
            self._buffered += n
            self._buffer.append((key, X, out.predictions, out.probabilities))
        else:
            self._counts[key]["skipped"] += n
        if n <= self.remember_rows // 10:
            with self._lock:
                self._recent[request_id] = (out.predictions, out.probabilities)
                self._recent_rows += n
                while (
                    self._recent_rows > self.remember_rows
                    or len(self._recent) > self.remember_requests
                ):
                    _, (pred, _) = self._recent.popitem(last=False)
                    self._recent_rows -= len(pred)

    def label(self, endpoint_id: int, version: int, request_id: str, label: Any) -> None:
        """Score a label (one per row of the request) against the remembered prediction."""
        labels = label if isinstance(label, list) else [label]
        if not labels or not all(isinstance(x, str | int | float | bool) for x in labels):
            raise InvalidInput(
                "label must be a value, or a list of one value per row of the request",
                details={"field": "label"},
            )
        v = self.versions.get(version)
        if (
            v is not None
            and v.classes is None
            and not all(isinstance(x, int | float) and not isinstance(x, bool) for x in labels)
        ):
            raise InvalidInput("this model predicts numbers: label must be a number",
                               details={"field": "label"})  # fmt: skip
        with self._lock:
            remembered = self._recent.pop(request_id, None)
            if remembered is not None:
                self._recent_rows -= len(remembered[0])
        key = (endpoint_id, version, self.window())
        if remembered is None or v is None:
            self._counts[key]["unmatched"] += 1
            return
        pred, proba = remembered
        if len(labels) != len(pred):
            raise InvalidInput(
                f"label has {len(labels)} values; the request had {len(pred)} rows",
                details={"field": "label"},
            )
        self._labels.append((key, labels, pred, proba))

    # The sync thread -----------------------------------------------------------------

    def collect(self, stats: dict[Key, dict[str, Any]]) -> None:
        """Add the buffered windows' states to ``stats`` under ``"monitor"`` (the runtime
        writes them), and count the runtime's per-window counters into the totals."""
        self._count_totals(stats)
        buffer, self._buffer, self._buffered = self._buffer, [], 0
        labels, self._labels = self._labels, []
        counts, self._counts = self._counts, defaultdict(lambda: defaultdict(int))
        states: dict[Key, dict[str, Any]] = {k: dict(c) for k, c in counts.items()}
        for key, items in _grouped(buffer):
            v = self.versions.get(key[1])
            if v is not None:
                self._windows(v, items, states.setdefault(key, {}))
        for key, items in _grouped(labels):
            v = self.versions.get(key[1])
            if v is not None:
                self._quality(v, items, states.setdefault(key, {}))
        for key, state in states.items():
            if state:
                stats.setdefault(key, {})["monitor"] = state
        if self.names and time.monotonic() - self._pruned >= self.prune_every_s:
            self._pruned = time.monotonic()
            try:
                prune_records(self.platform, sorted(self.names), self.log_size)
            except Exception:  # the log is only a sample; the counters must still be written
                log.exception("pruning the request log failed")

    def _windows(self, v: _Version, items: list[tuple[Any, ...]], state: dict[str, Any]) -> None:
        n = sum(len(p) for _, p, _ in items)
        state["observed"] = n
        try:
            if v.ref.features is not None:
                window = FeatureWindow(v.ref.features)
                window.add(self._columns(v, [x for x, _, _ in items]))
                state["drift"] = window.to_dict()
            if v.ref.predictions is not None:
                preds = PredictionWindow(v.ref.predictions)
                pred = np.concatenate([np.asarray(p) for _, p, _ in items])
                probas = [q for _, _, q in items]
                proba = None
                if v.proba_order is not None and all(q is not None for q in probas):
                    proba = np.concatenate([np.asarray(q) for q in probas])[:, v.proba_order]
                preds.add(pred, proba)
                state["predictions"] = preds.to_dict()
        except Exception as e:  # one odd batch must not stop the others from being counted
            log.warning("monitoring could not count %d rows: %s", n, e)
            state.pop("drift", None)
            state.pop("predictions", None)
            state["skipped"] = state.get("skipped", 0) + n

    @staticmethod
    def _columns(v: _Version, batches: list[Any]) -> Any:
        if all(isinstance(x, np.ndarray) for x in batches):
            matrix = np.concatenate(batches) if len(batches) > 1 else batches[0]
            return {c: matrix[:, i] for c, i in zip(v.columns, v.positions, strict=True) if i >= 0}
        frames = [x if isinstance(x, pd.DataFrame) else pd.DataFrame(x) for x in batches]
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        return {c: frame[c].to_numpy() for c in v.columns if c in frame.columns}

    @staticmethod
    def _quality(v: _Version, items: list[tuple[Any, ...]], state: dict[str, Any]) -> None:
        y = [x for labels, _, _ in items for x in labels]
        pred = np.concatenate([np.asarray(p) for _, p, _ in items])
        try:
            if v.classes is not None:
                c = ClassificationQuality(v.classes)
                probas = [p for _, _, p in items]
                proba = np.concatenate(probas) if all(p is not None for p in probas) else None
                c.add(np.asarray(y, dtype=object), y_pred=pred, proba=proba)
                state["quality"] = {"kind": "classification", "state": c.to_dict()}
            else:
                r = RegressionQuality()
                r.add(np.asarray(y, dtype=np.float64), pred)
                state["quality"] = {"kind": "regression", "state": r.to_dict()}
        except Exception as e:
            log.warning("monitoring could not score %d labels: %s", len(y), e)
            state["skipped_labels"] = state.get("skipped_labels", 0) + len(y)

    # Prometheus ----------------------------------------------------------------------

    def _count_totals(self, stats: Mapping[Key, Mapping[str, Any]]) -> None:
        for (endpoint_id, version, _), s in stats.items():
            buckets = s.get("latency_buckets")
            if buckets is None:
                continue
            t = self._totals.get((endpoint_id, version))
            if t is None:
                t = self._totals[(endpoint_id, version)] = [0, 0, 0, 0.0, [0] * len(buckets)]
            t[0] += s.get("requests", 0)
            t[1] += s.get("errors", 0)
            t[2] += s.get("rows", 0)
            t[3] += s.get("latency_ms_sum", 0.0)
            t[4] = [a + b for a, b in zip(t[4], buckets, strict=False)]

    def prometheus(self, endpoints: set[str], bounds_ms: Iterable[float]) -> bytes:
        """This replica's totals of the endpoints named in ``endpoints``, as Prometheus text.

        ``bounds_ms`` are the upper bounds of the latency buckets (the last
        bucket of the counters is everything above them).
        """
        collector = _Collector(self, endpoints, [b / 1000 for b in bounds_ms])
        return generate_latest(collector)  # type: ignore[arg-type]


class _Collector:
    def __init__(self, monitor: Monitor, endpoints: set[str], bounds_s: list[float]) -> None:
        self.monitor, self.endpoints, self.bounds_s = monitor, endpoints, bounds_s

    def collect(self) -> Iterator[Metric]:
        labels = ["endpoint", "version"]
        requests = CounterMetricFamily(
            "openmaas_endpoint_requests", "Predict calls per endpoint and version", labels=labels
        )
        errors = CounterMetricFamily(
            "openmaas_endpoint_errors", "Failed predict calls (version 0: refused before "
            "a version was chosen)", labels=labels,
        )  # fmt: skip
        rows = CounterMetricFamily("openmaas_endpoint_rows", "Rows predicted", labels=labels)
        latency = HistogramMetricFamily(
            "openmaas_endpoint_request_duration_seconds",
            "Predict latency on the replica",
            labels=labels,
        )
        for (endpoint_id, version), t in sorted(self.monitor._totals.items()):
            name = self.monitor.names.get(endpoint_id)
            if name is None or name not in self.endpoints:
                continue
            values = [name, str(version)]
            requests.add_metric(values, t[0])
            errors.add_metric(values, t[1])
            rows.add_metric(values, t[2])
            cumulative = np.cumsum(t[4]).tolist()
            buckets = [(_le(b), c) for b, c in zip(self.bounds_s, cumulative, strict=False)]
            latency.add_metric(values, [*buckets, ("+Inf", cumulative[-1])], t[3] / 1000)
        yield from (requests, errors, rows, latency)


def _le(bound: float) -> str:
    return f"{bound:g}"


def _grouped(items: list[tuple[Any, ...]]) -> Iterator[tuple[Key, list[tuple[Any, ...]]]]:
    groups: dict[Key, list[tuple[Any, ...]]] = defaultdict(list)
    for key, *rest in items:
        groups[key].append(tuple(rest))
    yield from groups.items()
