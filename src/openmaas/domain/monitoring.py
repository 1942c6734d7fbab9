"""Endpoint monitoring: references from training data, window states, drift and quality reports.

Serving replicas count each window of traffic in memory (``serving/monitor.py``)
and add their states to the ``endpoint_stats`` row of that endpoint, version
and window, under ``state["monitor"]``::

    {"drift": FeatureWindow.to_dict(),          # inputs binned against the reference
     "predictions": PredictionWindow.to_dict(), # outputs binned likewise
     "quality": {"kind": "classification" | "regression", "state": {...}},
     "observed": 600, # rows seen (with or without a reference to compare them with)
     "unmatched": 3,  # labels whose request this replica no longer remembered
     "skipped": 0}    # rows a replica could not count (and logged why)

Every part merges by addition (:func:`merge_monitor`), so replicas and windows
combine in any order. The reference a version is judged against is rebuilt
from the training dataset version's profile whenever needed: it is a pure
function of the profile and the version's signature, so replicas and the API
agree on its bins (a window whose reference fingerprint differs, e.g. after a
binning change, is left out of reports rather than misread).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import delete, select

from openmaas.domain.context import Ctx, Platform
from openmaas.domain.endpoints import _by_name
from openmaas.domain.policy import Action
from openmaas.errors import InvalidInput, OpenMaaSError
from openmaas.ml.monitoring import (
    ClassificationQuality,
    DriftRule,
    FeatureReference,
    FeatureWindow,
    Moments,
    PredictionWindow,
    Reference,
    RegressionQuality,
    detect_drift,
)
from openmaas.ml.monitoring.reference import category_key
from openmaas.store.metadata.scoped import readable_projects
from openmaas.store.metadata.tables import (
    DatasetVersion,
    Endpoint,
    EndpointRecord,
    EndpointStat,
    ModelVersion,
    Project,
)

log = logging.getLogger("openmaas.monitoring")
USABLE_KINDS = ("numeric", "categorical", "boolean")
PREDICTION = "prediction"


@dataclass(frozen=True)
class VersionReference:
    """What a deployed version's traffic is compared with.

    ``features`` is None when the version has no training dataset (an upload
    without lineage) or none of its inputs has a usable profile; ``note`` then
    says why. ``classes`` are the model's classes in its probability order.
    """

    features: Reference | None
    predictions: FeatureReference | None
    classes: tuple[Any, ...] | None
    dataset_version_id: int | None
    note: str = ""

    @property
    def quality_kind(self) -> str:
        return "classification" if self.classes is not None else "regression"


class _Cache:
    """References by the profile and signature they come from (a few dozen at most)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.items: OrderedDict[str, VersionReference] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: str) -> VersionReference | None:
        with self.lock:
            hit = self.items.get(key)
            if hit is not None:
                self.items.move_to_end(key)
            return hit

    def put(self, key: str, value: VersionReference) -> None:
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)


_references = _Cache()


def reference_for(platform: Platform, version: ModelVersion) -> VersionReference:
    """The reference of ``version``: its training dataset version's profile, when it has one."""
    signature = version.signature or {}
    outputs = signature.get("outputs") or {}
    classes = outputs.get("classes")
    classes = tuple(classes) if isinstance(classes, list) and len(classes) >= 2 else None
    names = [c["name"] for c in signature.get("inputs", []) if isinstance(c, dict)]
    targets = outputs.get("targets") or []
    if version.dataset_version_id is None:
        return VersionReference(
            None, _class_reference(classes, None), classes, None,
            "the version has no training dataset, so there is no reference to compare with",
        )  # fmt: skip
    with platform.store.read() as s:
        digest = s.scalar(
            select(DatasetVersion.profile_digest).where(
                DatasetVersion.id == version.dataset_version_id
            )
        )
    if digest is None:
        return VersionReference(
            None, _class_reference(classes, None), classes, None,
            "the version's training dataset version was deleted",
        )  # fmt: skip
    key = orjson.dumps([digest, names, targets, classes, version.dataset_version_id]).decode()
    cached = _references.get(key)
    if cached is not None:
        return cached
    with platform.artifacts.open(digest) as f:
        profile = orjson.loads(f.read())
    ref = build_reference(profile, names, targets, classes, version.dataset_version_id)
    _references.put(key, ref)
    return ref


def build_reference(
    profile: Mapping[str, Any],
    names: Sequence[str],
    targets: Sequence[str],
    classes: tuple[Any, ...] | None,
    dataset_version_id: int | None,
) -> VersionReference:
    """Each input with a usable profile column becomes a feature; the others are skipped."""
    columns: Mapping[str, Any] = profile.get("columns", {})
    feats: list[FeatureReference] = []
    for name in names:
        if (columns.get(name) or {}).get("kind") not in USABLE_KINDS:
            continue
        try:
            feats.append(Reference.from_profile(profile, [name]).features[0])
        except OpenMaaSError as e:  # a column without values: nothing to compare with
            log.info("no drift reference for feature %r: %s", name, e)
    target = targets[0] if targets else (profile.get("target") or {}).get("column")
    target_col = columns.get(target) if isinstance(target, str) else None
    if classes is not None:
        predictions = _class_reference(classes, target_col)
    elif isinstance(target, str) and target_col and target_col.get("kind") == "numeric":
        try:
            found = Reference.from_profile(profile, [target]).features[0]
            predictions = FeatureReference.from_dict({**found.to_dict(), "name": PREDICTION})
        except OpenMaaSError:
            predictions = None
    else:
        predictions = None
    note = "" if feats else "no input of the version has a usable column in the dataset profile"
    return VersionReference(
        Reference(feats) if feats else None, predictions, classes, dataset_version_id, note
    )


def _class_reference(
    classes: tuple[Any, ...] | None, target_col: Mapping[str, Any] | None
) -> FeatureReference | None:
    """The classes with their training counts (all 1 without a profile: a histogram only)."""
    if classes is None:
        return None
    top = {category_key(t["value"]): float(t["count"]) for t in (target_col or {}).get("top", [])}
    counts = {c: top.get(category_key(c), 0.0) for c in classes}
    if not sum(counts.values()):
        counts = dict.fromkeys(classes, 1.0)
    return FeatureReference.from_counts(PREDICTION, counts, source="training target")


# Merging states -------------------------------------------------------------------


def merge_monitor(a: Any, b: Mapping[str, Any]) -> dict[str, Any]:
    """Two ``state["monitor"]`` dicts added up; neither is changed (JSON columns compare
    old and new values, so an in-place change would never be written)."""
    if not isinstance(a, Mapping):
        return dict(b)
    out = dict(a)
    for key, value in b.items():
        old = out.get(key)
        if old is None:
            out[key] = value
        elif key == "drift":
            out[key] = _merge_window(old, value)
        elif key == "predictions":
            out[key] = _merge_predictions(old, value)
        elif key == "quality":
            out[key] = _merge_quality(old, value)
        elif isinstance(value, int | float) and isinstance(old, int | float):
            out[key] = old + value
    return out


def _merge_window(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    if a.get("reference") != b.get("reference"):  # a replica on other bins: keep the larger
        return dict(a if a.get("rows", 0) >= b.get("rows", 0) else b)
    counts = {
        name: [x + y for x, y in zip(c, b["counts"].get(name, [0] * len(c)), strict=False)]
        for name, c in a["counts"].items()
    }
    return {"reference": a["reference"], "rows": a["rows"] + b["rows"], "counts": counts}


def _merge_predictions(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    if a["window"].get("reference") != b["window"].get("reference"):
        return dict(a if a["window"]["rows"] >= b["window"]["rows"] else b)
    moments = Moments.from_list(a["moments"])
    moments.merge(Moments.from_list(b["moments"]))
    return {
        "window": _merge_window(a["window"], b["window"]),
        "moments": moments.to_list(),
        "proba_sums": [x + y for x, y in zip(a["proba_sums"], b["proba_sums"], strict=False)],
        "proba_rows": a["proba_rows"] + b["proba_rows"],
    }


def _merge_quality(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    try:
        q = _quality_from(a)
        q.merge(_quality_from(b))  # type: ignore[arg-type]
    except (OpenMaaSError, KeyError, TypeError):  # another kind or other classes: keep ``a``
        return dict(a)
    return {"kind": a["kind"], "state": q.to_dict()}


def _quality_from(d: Mapping[str, Any]) -> ClassificationQuality | RegressionQuality:
    if d["kind"] == "classification":
        return ClassificationQuality.from_dict(d["state"])
    return RegressionQuality.from_dict(d["state"])


def prune_records(platform: Platform, endpoint_ids: Sequence[int], keep: int) -> int:
    """Keep the newest ``keep`` entries of each endpoint's request log; how many went.

    Sampling bounds what a replica logs per second, this bounds what the log
    holds: without it a busy endpoint's log would grow for ever.
    """
    removed = 0
    with platform.store.write() as s:
        for endpoint_id in endpoint_ids:
            # by id, the insertion order: replicas add a sync's entries at once, so
            # timestamps tie
            cutoff = s.scalar(
                select(EndpointRecord.id)
                .where(EndpointRecord.endpoint_id == endpoint_id)
                .order_by(EndpointRecord.id.desc())
                .offset(keep)
                .limit(1)
            )
            if cutoff is not None:
                gone = s.execute(
                    delete(EndpointRecord).where(
                        EndpointRecord.endpoint_id == endpoint_id, EndpointRecord.id <= cutoff
                    )
                )
                removed += gone.rowcount  # type: ignore[attr-defined]
    return removed


# Reports --------------------------------------------------------------------------


def readable_endpoints(ctx: Ctx) -> set[str]:
    """Names of the endpoints the caller may read (what ``/metrics`` may show them)."""
    with ctx.store.read() as s:
        return set(
            s.scalars(
                select(Endpoint.name)
                .join(Project, Project.id == Endpoint.project_id)
                .where(readable_projects(ctx.principal))
            )
        )


def _windows(
    ctx: Ctx, name: str, windows: int
) -> tuple[Endpoint, dict[int, list[tuple[datetime, dict[str, Any]]]], dict[int, ModelVersion]]:
    """The newest ``windows`` windows' monitor states per version (newest first)."""
    if not 1 <= windows <= 10_000:
        raise InvalidInput("windows must be from 1 to 10000", details={"field": "windows"})
    with ctx.store.read() as s:
        ep = _by_name(ctx, s, name, Action.read)
        starts = list(
            s.scalars(
                select(EndpointStat.window_start)
                .where(EndpointStat.endpoint_id == ep.id)
                .distinct()
                .order_by(EndpointStat.window_start.desc())
                .limit(windows)
            )
        )
        by_version: dict[int, list[tuple[datetime, dict[str, Any]]]] = {}
        if starts:
            rows = s.execute(
                select(EndpointStat.version_id, EndpointStat.window_start, EndpointStat.state)
                .where(EndpointStat.endpoint_id == ep.id, EndpointStat.window_start >= starts[-1])
                .order_by(EndpointStat.window_start.desc())
            ).all()
            for version_id, start, state in rows:
                monitor = (state or {}).get("monitor")
                if version_id and monitor:
                    by_version.setdefault(version_id, []).append((start, monitor))
        versions = {
            v.id: v for v in s.scalars(select(ModelVersion).where(ModelVersion.id.in_(by_version)))
        }
        s.expunge_all()
        return ep, by_version, versions


def drift_rule(monitoring: Mapping[str, Any]) -> DriftRule:
    return DriftRule(psi_threshold=float(monitoring.get("psi_threshold") or 0.1))


def drift(ctx: Ctx, name: str, *, windows: int = 60) -> dict[str, Any]:
    """Feature drift and the prediction distribution of each version, window by window.

    A version's ``current`` report merges its newest windows until they hold
    the rule's ``min_rows`` rows (one window under steady traffic, several when
    it is quiet); the version, and the endpoint, are flagged when it is.
    """
    ep, by_version, versions = _windows(ctx, name, windows)
    rule = drift_rule(ep.monitoring)
    out_versions = []
    for version_id, items in sorted(by_version.items()):
        v = versions.get(version_id)
        ref = reference_for(ctx.platform, v) if v is not None else None
        out_versions.append(_version_drift(version_id, ref, items, rule))
    flagged = [v for v in out_versions if v["flagged"]]
    return {
        "endpoint": ep.name,
        "psi_threshold": rule.psi_threshold,
        "alpha": rule.alpha,
        "min_rows": rule.min_rows,
        "flagged": bool(flagged),
        "flagged_features": sorted({f for v in flagged for f in v["flagged_features"]}),
        "versions": out_versions,
    }


def _version_drift(
    version_id: int,
    ref: VersionReference | None,
    items: list[tuple[datetime, dict[str, Any]]],
    rule: DriftRule,
) -> dict[str, Any]:
    out_windows = []
    current: FeatureWindow | None = None
    current_start, current_n = None, 0
    for start, monitor in items:
        window = _feature_window(ref, monitor.get("drift"))
        report = detect_drift(window, rule).to_dict() if window is not None else None
        if window is not None and (current is None or current.rows < rule.min_rows):
            if current is None:
                current = FeatureWindow(window.reference)
            current.merge(window)
            current_start, current_n = start, current_n + 1
        out_windows.append(
            {
                "window_start": start,
                "rows": report["rows"] if report else 0,
                "flagged": bool(report and report["flagged"]),
                "flagged_features": report["flagged_features"] if report else [],
                "features": report["features"] if report else [],
                "predictions": _predictions(ref, monitor.get("predictions"), rule),
            }
        )
    now = detect_drift(current, rule).to_dict() if current is not None else None
    return {
        "version_id": version_id,
        "dataset_version_id": ref.dataset_version_id if ref else None,
        "features": list(ref.features.names) if ref and ref.features else [],
        "note": (ref.note if ref else "the version was deleted") if now is None else "",
        "flagged": bool(now and now["flagged"]),
        "flagged_features": now["flagged_features"] if now else [],
        "current": None if now is None else {**now, "since": current_start, "windows": current_n},
        "windows": out_windows,
    }


def _feature_window(ref: VersionReference | None, state: Any) -> FeatureWindow | None:
    if ref is None or ref.features is None or not isinstance(state, Mapping):
        return None
    try:
        return FeatureWindow.from_dict(ref.features, state)
    except (OpenMaaSError, KeyError, ValueError):  # counted on other bins: not comparable
        return None


def _predictions(
    ref: VersionReference | None, state: Any, rule: DriftRule
) -> dict[str, Any] | None:
    if ref is None or ref.predictions is None or not isinstance(state, Mapping):
        return None
    try:
        window = PredictionWindow.from_dict(ref.predictions, state)
    except (OpenMaaSError, KeyError, ValueError):
        return None
    return {**window.summary(), "drift": window.drift(rule).to_dict()}


def quality(ctx: Ctx, name: str, *, windows: int = 60) -> dict[str, Any]:
    """Live quality of each version from feedback labels, overall and window by window.

    Labels count in the window they arrive in, scored against the prediction
    the replica that answered remembers (``unmatched`` counts labels for
    requests it had forgotten or never served).
    """
    ep, by_version, _ = _windows(ctx, name, windows)
    out_versions = []
    for version_id, items in sorted(by_version.items()):
        total: ClassificationQuality | RegressionQuality | None = None
        per_window = []
        unmatched = 0
        for start, monitor in items:
            unmatched += int(monitor.get("unmatched", 0))
            q = monitor.get("quality")
            if not isinstance(q, Mapping):
                continue
            try:
                window = _quality_from(q)
                if total is None:
                    total = _quality_from(q)
                else:
                    total.merge(window)  # type: ignore[arg-type]
            except (OpenMaaSError, KeyError, TypeError, ValueError):
                continue
            per_window.append({"window_start": start, **window.result()})
        if total is None and not unmatched:
            continue
        kind = None if total is None else _kind(total)
        out_versions.append(
            {
                "version_id": version_id,
                "kind": kind,
                "unmatched": unmatched,
                "overall": None if total is None else total.result(),
                "windows": per_window,
            }
        )
    return {"endpoint": ep.name, "versions": out_versions}


def _kind(q: ClassificationQuality | RegressionQuality) -> str:
    return "classification" if isinstance(q, ClassificationQuality) else "regression"
