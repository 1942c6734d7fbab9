"""What "in distribution" means for each feature: fixed bins and their reference mass.

A numeric feature is cut at quantiles of its reference values (``inverted_cdf``,
so every edge is an observed value) into up to ``bins`` right-closed bins
``(-inf, e1], (e1, e2], ..., (ek, inf)``; the outer bins are open so values
outside the training range still land somewhere, and right-closed bins at
observed values keep the values of a discrete feature apart. A categorical
feature has one bin per reference category (the ``TOP_CATEGORIES`` most
frequent) and one "other" bin. Missing values (NaN, None) are counted apart
and their reference rate is kept, so a broken upstream shows as drift too.

Bins are fixed once, from the reference, so a window is just counts in them:
counts add up across replicas and windows, which is what makes every
monitoring state here mergeable.

From a dataset version's profile (:mod:`openmaas.ml.data.profile`) a numeric
reference uses, in order of preference, the profile's ``sample`` (a uniform
sample of the rows, ``MIN_SAMPLE`` values at least) or the column's
``histogram`` (20 equal-width bins counted on the up-to-100,000-row reservoir;
its interior edges become the bins, joined by the ``quantiles`` for a
continuous column so that skewed data is not all in one bin). A
categorical column uses its ``top`` values, whose counts are exact over all
rows; a boolean column too, binned as the numbers 0 and 1. Text and datetime
columns have no reference. Categories are compared as ``str(value)``, so a
window must hand them over as the same type the reference saw (``1`` and
``1.0`` are different categories).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from openmaas.errors import InvalidInput

Kind = Literal["numeric", "categorical"]

DEFAULT_BINS = 20
PSI_BINS = 10
MIN_PER_BIN = 25
MIN_SAMPLE = 500
TOP_CATEGORIES = 20
CONTINUOUS_DISTINCT = 100


@dataclass(frozen=True, eq=False)
class FeatureReference:
    """One feature's bins and reference distribution.

    ``proportions`` cover the non-missing values: numeric bins
    (``len(edges) + 1``) or categories followed by "other". ``n`` is how many
    values they were estimated from; the KS and chi-square p-values account
    for that noise. ``psi_groups`` maps each bin to one of about ``PSI_BINS``
    groups of similar reference mass: PSI on 20 bins of 1,000 rows is mostly
    noise, KS needs the finer bins.
    """

    name: str
    kind: Kind
    proportions: npt.NDArray[np.float64]
    missing_rate: float
    n: int
    source: str
    edges: npt.NDArray[np.float64]
    categories: tuple[str, ...] = ()

    psi_groups: npt.NDArray[np.int64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "psi_groups", psi_groups(self.proportions, PSI_BINS))

    @property
    def n_bins(self) -> int:
        return int(self.proportions.size)

    @classmethod
    def from_values(
        cls, name: str, values: npt.ArrayLike, *, bins: int = DEFAULT_BINS, source: str = "array"
    ) -> FeatureReference:
        """A reference from raw values: numeric if they are numbers, else categorical."""
        arr = np.asarray(values)
        if arr.dtype.kind in "biuf":
            return _numeric_from_values(name, arr.astype(np.float64), bins=bins, source=source)
        return _categorical_from_values(name, arr)

    @classmethod
    def from_counts(
        cls, name: str, counts: Mapping[Any, float], *, missing: float = 0, source: str = "counts"
    ) -> FeatureReference:
        """A categorical reference from counts per category (e.g. a model's training classes)."""
        cats, c = _sorted_counts(counts.items())
        return _categorical(name, cats, np.append(c, 0.0), missing, source)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "proportions": [float(p) for p in self.proportions],
            "missing_rate": self.missing_rate,
            "n": self.n,
            "source": self.source,
        }
        if self.kind == "numeric":
            out["edges"] = [float(e) for e in self.edges]
        else:
            out["categories"] = list(self.categories)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureReference:
        return cls(
            name=d["name"],
            kind=d["kind"],
            proportions=np.asarray(d["proportions"], dtype=np.float64),
            missing_rate=float(d["missing_rate"]),
            n=int(d["n"]),
            source=d["source"],
            edges=np.asarray(d.get("edges", []), dtype=np.float64),
            categories=tuple(d.get("categories", ())),
        )


class Reference:
    """The references of an endpoint's features, in the order of its input columns."""

    def __init__(self, features: Iterable[FeatureReference]) -> None:
        self.features = tuple(features)
        if not self.features:
            raise InvalidInput("a drift reference needs at least one feature")
        self.names = tuple(f.name for f in self.features)
        if len(set(self.names)) != len(self.names):
            raise InvalidInput("feature names in a drift reference must be unique")
        self.fingerprint = hashlib.sha256(
            json.dumps(self.to_dict()["features"], sort_keys=True).encode()
        ).hexdigest()[:16]

    @classmethod
    def from_profile(
        cls,
        profile: Mapping[str, Any],
        features: Sequence[str] | None = None,
        *,
        bins: int = DEFAULT_BINS,
    ) -> Reference:
        """From a dataset version's profile; ``features`` default to its non-target columns."""
        columns: Mapping[str, Any] = profile.get("columns", {})
        sample: Mapping[str, Any] = profile.get("sample", {})
        if features is None:
            target = (profile.get("target") or {}).get("column")
            features = [n for n, c in columns.items() if n != target and _usable(c)]
        out = []
        for name in features:
            if name not in columns:
                raise InvalidInput(f"feature {name!r} is not a column of the dataset profile")
            out.append(_from_profile_column(name, columns[name], sample.get(name), bins))
        return cls(out)

    @classmethod
    def from_columns(
        cls, columns: Mapping[str, npt.ArrayLike], *, bins: int = DEFAULT_BINS
    ) -> Reference:
        """From training data as columns (numbers give numeric features, others categorical)."""
        return cls(FeatureReference.from_values(n, v, bins=bins) for n, v in columns.items())

    @classmethod
    def from_matrix(
        cls, x: npt.ArrayLike, names: Sequence[str], *, bins: int = DEFAULT_BINS
    ) -> Reference:
        """From a numeric training matrix whose columns are ``names``."""
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != len(names):
            raise InvalidInput(
                f"training matrix has shape {arr.shape}, expected (rows, {len(names)})"
            )
        return cls(
            FeatureReference.from_values(n, arr[:, j], bins=bins) for j, n in enumerate(names)
        )

    def to_dict(self) -> dict[str, Any]:
        return {"features": [f.to_dict() for f in self.features]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Reference:
        return cls(FeatureReference.from_dict(f) for f in d["features"])


def category_key(value: Any) -> str:
    """The string a category is compared by, in references and windows alike."""
    return str(value)


def psi_groups(proportions: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.int64]:
    """Adjacent bins joined into about ``k`` groups of at least ``1/k`` reference mass each."""
    target = (1.0 - 1e-9) / k
    groups = np.zeros(proportions.size, dtype=np.int64)
    g, acc = 0, 0.0
    for i, p in enumerate(proportions):
        groups[i] = g
        acc += float(p)
        if acc >= target and i < proportions.size - 1:
            g, acc = g + 1, 0.0
    if g > 0 and acc < target / 2:  # a small tail joins its neighbour
        groups[groups == g] = g - 1
    return groups


def _sorted_counts(pairs: Iterable[tuple[Any, float]]) -> tuple[tuple[str, ...], Any]:
    """Categories as sorted keys (windows find them by binary search) and their counts."""
    items = sorted((category_key(k), float(c)) for k, c in pairs)
    return tuple(k for k, _ in items), np.asarray([c for _, c in items], dtype=np.float64)


def _usable(col: Mapping[str, Any]) -> bool:
    return col.get("kind") in ("numeric", "categorical", "boolean")


def _from_profile_column(
    name: str, col: Mapping[str, Any], sample: Sequence[Any] | None, bins: int
) -> FeatureReference:
    count, missing = int(col.get("count") or 0), int(col.get("missing") or 0)
    missing_rate = missing / (count + missing) if count + missing else 0.0
    if col.get("kind") == "boolean" and col.get("top"):
        return _boolean_from_top(name, col["top"], missing_rate)
    if "histogram" in col:
        values = np.asarray([v for v in sample or () if v is not None], dtype=np.float64)
        values = values[~np.isnan(values)]
        hist = col["histogram"]
        usable = bool(hist.get("counts")) and None not in hist.get("edges", [None])
        if values.size >= MIN_SAMPLE or (values.size and not usable):
            ref = _numeric_from_values(name, values, bins=bins, source="sample")
            return _with_missing(ref, missing_rate)
        if usable:
            return _numeric_from_histogram(name, col, missing_rate)
    elif col.get("top"):
        cats, c = _sorted_counts((t["value"], t["count"]) for t in col["top"])
        other = max(0.0, count - float(c.sum()))
        return _categorical(name, cats, np.append(c, other), missing, "top")
    raise InvalidInput(f"column {name!r} has no values in the profile to build a reference from")


def _boolean_from_top(
    name: str, top: Sequence[Mapping[str, Any]], missing_rate: float
) -> FeatureReference:
    """Booleans as numbers: bins (-inf, 0] for false, (0, 1] for true, (1, inf) for neither.

    Numeric because the data plane may hand them over as 0/1 numbers as well
    as booleans, and both then land in the same bins.
    """
    counts = {bool(t["value"]): float(t["count"]) for t in top}
    c = np.array([counts.get(False, 0.0), counts.get(True, 0.0), 0.0])
    return FeatureReference(
        name=name,
        kind="numeric",
        proportions=c / c.sum(),
        missing_rate=missing_rate,
        n=round(c.sum()),
        source="top",
        edges=np.array([0.0, 1.0]),
    )


def _with_missing(ref: FeatureReference, missing_rate: float) -> FeatureReference:
    return FeatureReference(
        ref.name, ref.kind, ref.proportions, missing_rate, ref.n, ref.source, ref.edges
    )


def _numeric_from_values(
    name: str, values: npt.NDArray[np.float64], *, bins: int, source: str
) -> FeatureReference:
    missing = np.isnan(values)
    v = values[~missing]
    if v.size == 0:
        raise InvalidInput(f"feature {name!r} has no values to build a reference from")
    k = max(1, min(bins, v.size // MIN_PER_BIN))
    edges = np.unique(np.quantile(v, np.arange(1, k) / k, method="inverted_cdf"))
    edges = _separate_constant(edges[np.isfinite(edges)], v)
    counts = np.bincount(np.searchsorted(edges, v, side="left"), minlength=edges.size + 1)
    return FeatureReference(
        name=name,
        kind="numeric",
        proportions=counts / v.size,
        missing_rate=float(missing.mean()),
        n=int(v.size),
        source=source,
        edges=edges,
    )


def _separate_constant(
    edges: npt.NDArray[np.float64], v: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """A constant feature gets bins below, at and above its value, so any change shows."""
    if edges.size or not np.isfinite(v[0]) or (v != v[0]).any():
        return edges
    c = float(v[0])
    return np.array([np.nextafter(c, -np.inf), c])


def _numeric_from_histogram(
    name: str, col: Mapping[str, Any], missing_rate: float
) -> FeatureReference:
    hist = col["histogram"]
    full = np.asarray(hist["edges"], dtype=np.float64)
    counts = np.asarray(hist["counts"], dtype=np.float64)
    if full.size == 2 and full[0] == full[1]:
        edges, counts = np.array([np.nextafter(full[0], -np.inf), full[0]]), np.r_[0, counts, 0]
        proportions = counts / counts.sum()
    else:  # the histogram's bins are [a, b): an edge just below b makes (a-, b-] the same bin
        edges = np.nextafter(full[1:-1], -np.inf)
        cdf = np.cumsum(counts)[:-1] / counts.sum()
        edges, cdf = _refine_with_quantiles(edges, cdf, col)
        proportions = np.diff(np.r_[0.0, np.clip(cdf, 0, 1), 1.0])
    return FeatureReference(
        name=name,
        kind="numeric",
        proportions=proportions,
        missing_rate=missing_rate,
        n=int(hist.get("sample_size") or counts.sum()),
        source="histogram",
        edges=edges,
    )


def _refine_with_quantiles(
    edges: npt.NDArray[np.float64], cdf: npt.NDArray[np.float64], col: Mapping[str, Any]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Add the profile's quantiles as edges of a continuous column.

    Equal-width bins put nearly all of a skewed column in one or two bins; its
    quantiles (1 % to 99 %) split the body and the tails. A discrete column's
    quantiles sit on atoms, where "the CDF at x" is ambiguous, so only a
    column with many distinct values and strictly increasing quantiles gains them.
    """
    quantiles = col.get("quantiles") or {}
    knots = sorted(
        (float(v), int(k[1:]) / 100)
        for k, v in quantiles.items()
        if v is not None and k[1:].isdigit()
    )
    x = np.asarray([k[0] for k in knots])
    if (col.get("distinct") or 0) < CONTINUOUS_DISTINCT or x.size < 2 or (np.diff(x) <= 0).any():
        return edges, cdf
    xs = np.r_[edges, x]
    fs = np.r_[cdf, [k[1] for k in knots]]
    order = np.argsort(xs, kind="stable")
    xs, fs = xs[order], np.maximum.accumulate(fs[order])
    keep = np.r_[xs[1:] != xs[:-1], True]  # of equal edges, the last has the largest CDF
    return xs[keep], fs[keep]


def _categorical_from_values(name: str, values: npt.NDArray[Any]) -> FeatureReference:
    obj = values.astype(object)
    missing = missing_mask(obj)
    keys, counts = np.unique(obj[~missing].astype(str), return_counts=True)
    if keys.size == 0:
        raise InvalidInput(f"feature {name!r} has no values to build a reference from")
    top = np.sort(np.argsort(-counts, kind="stable")[:TOP_CATEGORIES])
    other = counts.sum() - counts[top].sum()
    return _categorical(
        name, tuple(str(k) for k in keys[top]), np.append(counts[top], other),
        float(missing.sum()), "array",
    )  # fmt: skip


def _categorical(
    name: str, categories: tuple[str, ...], counts: npt.NDArray[Any], missing: float, source: str
) -> FeatureReference:
    total = float(counts.sum())
    if total <= 0:
        raise InvalidInput(f"feature {name!r} has no values to build a reference from")
    return FeatureReference(
        name=name,
        kind="categorical",
        proportions=np.asarray(counts, dtype=np.float64) / total,
        missing_rate=missing / (total + missing),
        n=round(total),
        source=source,
        edges=np.empty(0),
        categories=categories,
    )


def missing_mask(values: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """None or NaN, elementwise, for an object or string array."""
    if values.dtype.kind in "US":
        return np.zeros(values.shape, dtype=bool)
    is_none = values == None  # noqa: E711 - elementwise on an object array
    is_nan = values != values  # NaN is the one value unequal to itself
    return np.asarray(is_none | is_nan, dtype=bool)
