"""Counts of a window of traffic in each feature's reference bins: mergeable, bounded.

The state is one integer matrix, a row per feature and a column per bin with
the last column for missing values; its size depends only on the reference.
Windows of several replicas, or consecutive windows, merge by adding matrices.

Numeric features of a small batch are binned together in one vectorised
pass (each value compared with its feature's edges, padded with +inf to a
common length), so a one-row request costs a handful of numpy calls whatever
the number of features; larger batches use a binary search per feature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sized
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from openmaas.errors import InvalidInput
from openmaas.ml.monitoring.reference import Reference, missing_mask

Batch = Mapping[str, npt.ArrayLike] | npt.ArrayLike

_BROADCAST_ROWS = 64  # fewer rows: compare with all edges at once; more: binary search


class FeatureWindow:
    """Per-feature bin counts of the rows seen in one window.

    ``add`` takes a batch as columns (``{name: values}``, a pandas DataFrame
    or an Arrow table; absent columns count as missing) or, when every
    feature is numeric, an ``(n, features)`` matrix in reference order. NaN
    and None are missing. Each call costs a few numpy calls (~15 us for one
    row of ten features), so the data plane should count micro-batches or
    buffered rows rather than call it per request.
    """

    def __init__(self, reference: Reference) -> None:
        self.reference = reference
        self.width = max(f.n_bins for f in reference.features) + 1
        self.counts = np.zeros((len(reference.features), self.width), dtype=np.int64)
        self.rows = 0
        num = [j for j, f in enumerate(reference.features) if f.kind == "numeric"]
        self._numeric = np.asarray(num, dtype=np.int64)
        self._categorical = [j for j, f in enumerate(reference.features) if f.kind != "numeric"]
        n_edges = max((reference.features[j].edges.size for j in num), default=0)
        self._edges = np.full((len(num), n_edges), np.inf)
        for i, j in enumerate(num):
            e = reference.features[j].edges
            self._edges[i, : e.size] = e
        self._edge_list = [reference.features[j].edges for j in num]
        self._all_numeric = len(num) == len(reference.features)
        self._offsets = np.arange(len(num), dtype=np.int64) * self.width
        self._sorted_cats = {
            j: np.asarray(reference.features[j].categories, dtype=str) for j in self._categorical
        }

    def add(self, batch: Batch) -> None:
        """Count a batch of rows."""
        if not isinstance(batch, Mapping | np.ndarray | list) and hasattr(batch, "columns"):
            batch = _frame_columns(batch)  # a pandas DataFrame or Arrow table: by name
        if isinstance(batch, Mapping):
            n = _batch_rows(batch)
            if n == 0:
                return
            self._add_columns(batch, n)
        else:
            x = _as_float(batch, "the batch")
            if x.ndim != 2 or x.shape[1] != len(self.reference.features):
                raise InvalidInput(
                    f"batch has shape {x.shape}, expected (rows, {len(self.reference.features)})"
                )
            if self._categorical:
                raise InvalidInput("a matrix batch cannot hold categorical features; pass columns")
            n = x.shape[0]
            if n == 0:
                return
            self._add_numeric(x)
        self.rows += n

    def _add_columns(self, batch: Mapping[str, npt.ArrayLike], n: int) -> None:
        feats = self.reference.features
        if self._numeric.size:
            cols = [batch.get(feats[j].name) for j in self._numeric]
            try:  # one conversion for all columns: most batches have every feature, as numbers
                complete = all(c is not None for c in cols)
                x = np.asarray(cols, dtype=np.float64).T if complete else None
            except (TypeError, ValueError):
                x = None
            if x is None:
                x = np.empty((n, self._numeric.size))
                for i, (j, col) in enumerate(zip(self._numeric, cols, strict=True)):
                    what = f"feature {feats[j].name!r}"
                    x[:, i] = np.nan if col is None else _as_float(col, what)
            self._add_numeric(x)
        for j in self._categorical:
            col = batch.get(feats[j].name)
            if col is None:
                self.counts[j, -1] += n
                continue
            self.counts[j] += _categorical_counts(
                np.asarray(col, dtype=object), self._sorted_cats[j], self.width
            )

    def _add_numeric(self, x: npt.NDArray[np.float64]) -> None:
        d = self._numeric.size
        if x.shape[0] < _BROADCAST_ROWS:
            idx = (x[:, :, None] > self._edges[None, :, :]).sum(axis=2)
        else:
            idx = np.empty(x.shape, dtype=np.int64)
            for i, edges in enumerate(self._edge_list):
                idx[:, i] = np.searchsorted(edges, x[:, i], side="left")
        idx[np.isnan(x)] = self.width - 1
        idx += self._offsets
        counts = np.bincount(idx.ravel(), minlength=d * self.width).reshape(d, self.width)
        if self._all_numeric:
            self.counts += counts
        else:
            self.counts[self._numeric] += counts

    def merge(self, other: FeatureWindow) -> None:
        """Add another window's counts (another replica's, or the next window's)."""
        if other.reference.fingerprint != self.reference.fingerprint:
            raise InvalidInput("cannot merge drift windows built on different references")
        self.counts += other.counts
        self.rows += other.rows

    def feature_counts(self, j: int) -> tuple[npt.NDArray[np.int64], int]:
        """Feature ``j``'s counts per reference bin, and its missing count."""
        return self.counts[j, : self.reference.features[j].n_bins], int(self.counts[j, -1])

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state: the reference's fingerprint, rows, and per feature bins + missing."""
        return {
            "reference": self.reference.fingerprint,
            "rows": self.rows,
            "counts": {
                f.name: [*self.feature_counts(j)[0].tolist(), self.feature_counts(j)[1]]
                for j, f in enumerate(self.reference.features)
            },
        }

    @classmethod
    def from_dict(cls, reference: Reference, d: Mapping[str, Any]) -> FeatureWindow:
        if d.get("reference") != reference.fingerprint:
            raise InvalidInput("drift window state was built on a different reference")
        w = cls(reference)
        w.rows = int(d["rows"])
        for j, f in enumerate(reference.features):
            c = d["counts"][f.name]
            w.counts[j, : f.n_bins] = c[:-1]
            w.counts[j, -1] = c[-1]
        return w


def _batch_rows(batch: Mapping[str, npt.ArrayLike]) -> int:
    lengths = {len(cast(Sized, v)) if hasattr(v, "__len__") else 1 for v in batch.values()}
    if len(lengths) > 1:
        raise InvalidInput(f"batch columns have different lengths: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def _as_float(values: npt.ArrayLike, what: str) -> npt.NDArray[np.float64]:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"{what} has values that are not numbers") from e


def _frame_columns(frame: Any) -> dict[str, npt.ArrayLike]:
    names = getattr(frame, "column_names", None) or list(frame.columns)
    return {str(c): np.asarray(frame[c]) for c in names}


def _categorical_counts(
    values: npt.NDArray[Any], sorted_cats: npt.NDArray[np.str_], width: int
) -> npt.NDArray[np.int64]:
    missing = missing_mask(values)
    keys = values[~missing].astype(str)
    other = sorted_cats.size
    if sorted_cats.size:
        pos = np.minimum(np.searchsorted(sorted_cats, keys), other - 1)
        idx = np.where(sorted_cats[pos] == keys, pos, other)
    else:
        idx = np.full(keys.size, other)
    out = np.bincount(idx, minlength=width)
    out[-1] = int(missing.sum())
    return out
