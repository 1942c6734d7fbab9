"""Response shapes of endpoint monitoring: window statistics, drift and live quality."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from openmaas.api.schemas import Out
from openmaas.serving.runtime import LATENCY_BUCKETS_MS
from openmaas.store.metadata.tables import EndpointStat


class WindowStatOut(Out):
    """One version's counters in one window.

    ``latency_buckets`` counts requests per bucket whose upper bounds (ms) are
    ``latency_buckets_ms``, plus a last bucket for slower ones; the
    percentiles are the upper bound of the bucket they fall in (None: slower
    than the last bound). ``state`` holds every raw counter (``feedback``,
    ``reward_sum``, ``shadow_rows``, ``shadow_disagree``, ...).
    """

    version_id: int
    window_start: datetime
    requests: int
    errors: int
    rows: int
    latency_ms_mean: float | None
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    latency_ms_p99: float | None
    latency_buckets_ms: list[float]
    latency_buckets: list[int]
    state: dict[str, Any]

    @classmethod
    def of(cls, row: EndpointStat) -> WindowStatOut:
        state = {k: v for k, v in (row.state or {}).items() if k != "monitor"}
        requests = int(state.get("requests", 0))
        buckets = list(state.get("latency_buckets") or [0] * (len(LATENCY_BUCKETS_MS) + 1))
        return cls(
            version_id=row.version_id, window_start=row.window_start, requests=requests,
            errors=int(state.get("errors", 0)), rows=int(state.get("rows", 0)),
            latency_ms_mean=state.get("latency_ms_sum", 0.0) / requests if requests else None,
            latency_ms_p50=_percentile(buckets, 0.5), latency_ms_p95=_percentile(buckets, 0.95),
            latency_ms_p99=_percentile(buckets, 0.99),
            latency_buckets_ms=[float(b) for b in LATENCY_BUCKETS_MS], latency_buckets=buckets,
            state=state,
        )  # fmt: skip


def _percentile(buckets: list[int], q: float) -> float | None:
    total = sum(buckets)
    if not total:
        return None
    seen = 0
    for bound, count in zip(LATENCY_BUCKETS_MS, buckets, strict=False):
        seen += count
        if seen >= q * total:
            return float(bound)
    return None


class FeatureDriftOut(Out):
    """One feature in one window: ``ks`` is None for categorical features (chi-square)."""

    name: str
    kind: str
    rows: int
    missing: int
    psi: float
    ks: float | None
    p_value: float
    enough_data: bool
    flagged: bool


class PredictionsOut(Out):
    """The predictions of one window: a histogram on ``edges`` (numbers; ``counts`` has one
    more entry than ``edges``) or counts per class in ``classes`` (the last is "other"),
    with their drift against the training target."""

    rows: int
    missing: int
    counts: list[int]
    edges: list[float] | None = None
    classes: list[str] | None = None
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    mean_proba: dict[str, float] | None = None
    drift: FeatureDriftOut


class DriftWindowOut(Out):
    window_start: datetime
    rows: int
    flagged: bool
    flagged_features: list[str]
    features: list[FeatureDriftOut]
    predictions: PredictionsOut | None


class CurrentDriftOut(Out):
    """The newest windows merged until they hold ``min_rows`` rows: what flags a version."""

    since: datetime
    windows: int
    rows: int
    flagged: bool
    flagged_features: list[str]
    features: list[FeatureDriftOut]


class VersionDriftOut(Out):
    version_id: int
    dataset_version_id: int | None
    features: list[str]
    note: str
    flagged: bool
    flagged_features: list[str]
    current: CurrentDriftOut | None
    windows: list[DriftWindowOut]


class DriftOut(Out):
    endpoint: str
    psi_threshold: float
    alpha: float
    min_rows: int
    flagged: bool
    flagged_features: list[str]
    versions: list[VersionDriftOut]


class QualityResultOut(Out):
    """Classification fills ``accuracy``, ``log_loss``, ``brier`` (multi-class: twice
    scikit-learn's binary one), ``unknown`` (labels that are no class), ``classes``
    and ``confusion`` (rows: labels, columns: predictions); regression fills
    ``mae``, ``rmse``, ``bias`` (mean prediction - label), ``r2`` and ``skipped``."""

    rows: int
    accuracy: float | None = None
    log_loss: float | None = None
    brier: float | None = None
    unknown: int | None = None
    classes: list[str] | None = None
    confusion: list[list[int]] | None = None
    mae: float | None = None
    rmse: float | None = None
    bias: float | None = None
    r2: float | None = None
    skipped: int | None = None


class QualityWindowOut(QualityResultOut):
    window_start: datetime


class VersionQualityOut(Out):
    version_id: int
    kind: str | None
    unmatched: int
    overall: QualityResultOut | None
    windows: list[QualityWindowOut]


class QualityOut(Out):
    endpoint: str
    versions: list[VersionQualityOut]
