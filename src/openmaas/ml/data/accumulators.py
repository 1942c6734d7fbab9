"""Per-column statistics accumulated batch by batch, in one pass.

Each accumulator takes the column's chunks as they stream past and keeps
bounded state: exact counts, min/max, mean and variance (merged with Chan's
formula, so batch order does not matter numerically), distinct counts through
:class:`~openmaas.ml.data.sketches.DistinctCounter`. Order statistics
(quantiles, histograms, top values of free text) need the data's distribution
and are taken later from the row reservoir by :mod:`openmaas.ml.data.profile`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from openmaas.ml.data.sketches import DistinctCounter

TOP_K = 20
DISTINCT_CAP = 100_000


def finite(x: Any) -> float | None:
    """``x`` as a float, or None if missing, NaN or infinite (JSON has neither)."""
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


def iso(v: Any) -> Any:
    """Dates and datetimes as ISO strings; anything else unchanged."""
    return v.isoformat() if hasattr(v, "isoformat") else v


class ColumnAccumulator:
    """Missing values and distinct counts; subclasses add what their type needs."""

    def __init__(self, dtype: pa.DataType) -> None:
        self.dtype = dtype
        self.count = 0
        self.missing = 0
        self.distinct = DistinctCounter(DISTINCT_CAP)

    def add(self, arr: pa.ChunkedArray) -> None:
        nulls = arr.null_count
        self.missing += nulls
        self.count += len(arr) - nulls
        if len(arr) > nulls:
            self._add_valid(arr)

    def _add_valid(self, arr: pa.ChunkedArray) -> None:
        self.distinct.add(arr)

    def result(self) -> dict[str, Any]:
        return {
            "dtype": str(self.dtype),
            "count": self.count,
            "missing": self.missing,
            "distinct": self.distinct_count(),
            "distinct_approx": not self.distinct_exact(),
        }

    def distinct_count(self) -> int:
        return self.distinct.count()

    def distinct_exact(self) -> bool:
        return self.distinct.exact


class NumericAccumulator(ColumnAccumulator):
    """min, max, mean and variance over all values, merged across batches."""

    def __init__(self, dtype: pa.DataType) -> None:
        super().__init__(dtype)
        self.min: Any = None
        self.max: Any = None
        self.mean = 0.0
        self.m2 = 0.0

    def _add_valid(self, arr: pa.ChunkedArray) -> None:
        valid = arr.drop_null() if arr.null_count else arr
        a = np.asarray(valid.to_numpy())
        self.distinct.add(valid, numbers=a)
        lo, hi = a.min().item(), a.max().item()
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)
        f = a.astype(np.float64, copy=False)
        n_b = f.size
        mean_b = float(f.sum()) / n_b
        d = f - mean_b
        m2_b = float(np.square(d, out=d).sum())  # not np.dot: BLAS threads spin on 2 cores
        n_a = self.count - n_b
        n = self.count
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * n_a * n_b / n

    def result(self) -> dict[str, Any]:
        out = super().result()
        n = self.count
        out.update(
            min=_plain(self.min),
            max=_plain(self.max),
            mean=finite(self.mean) if n else None,
            std=finite(math.sqrt(self.m2 / (n - 1))) if n > 1 else None,
        )
        return out


def _plain(v: Any) -> Any:
    return finite(v) if isinstance(v, float) else v


class BooleanAccumulator(ColumnAccumulator):
    """Counts of true and false."""

    def __init__(self, dtype: pa.DataType) -> None:
        super().__init__(dtype)
        self.true = 0

    def _add_valid(self, arr: pa.ChunkedArray) -> None:
        self.true += pc.sum(arr).as_py() or 0

    def distinct_count(self) -> int:
        return int(self.true > 0) + int(self.count - self.true > 0)

    def distinct_exact(self) -> bool:
        return True

    def top(self) -> list[dict[str, Any]]:
        pairs = [(True, self.true), (False, self.count - self.true)]
        pairs.sort(key=lambda p: -p[1])
        return [{"value": v, "count": c} for v, c in pairs if c > 0]


class TemporalAccumulator(ColumnAccumulator):
    """Earliest and latest date or timestamp."""

    def __init__(self, dtype: pa.DataType) -> None:
        super().__init__(dtype)
        self.min: Any = None
        self.max: Any = None

    def _add_valid(self, arr: pa.ChunkedArray) -> None:
        super()._add_valid(arr)
        mm = pc.min_max(arr)
        lo, hi = mm["min"], mm["max"]
        self.min = lo if self.min is None or pc.less(lo, self.min).as_py() else self.min
        self.max = hi if self.max is None or pc.greater(hi, self.max).as_py() else self.max

    def result(self) -> dict[str, Any]:
        out = super().result()
        out.update(
            min=None if self.min is None else iso(self.min.as_py()),
            max=None if self.max is None else iso(self.max.as_py()),
        )
        return out


class StringAccumulator(ColumnAccumulator):
    """Exact value counts while there are few distinct values, and lengths in bytes.

    Counting stops (and distinct switches to a sketch) past ``DISTINCT_CAP``
    distinct values: such a column is free text, and its top values are then
    estimated from the row sample instead. Per-batch counts are merged lazily,
    every ``2 * DISTINCT_CAP`` pending entries, to hash each value once.
    """

    def __init__(self, dtype: pa.DataType) -> None:
        super().__init__(dtype)
        self.counting = True
        self._counts: list[pa.Table] = []
        self._pending = 0
        self.len_min: int | None = None
        self.len_max: int | None = None
        self.len_sum = 0

    def _add_valid(self, arr: pa.ChunkedArray) -> None:
        valid = arr.drop_null() if arr.null_count else arr
        lens = pc.binary_length(valid)
        mm = pc.min_max(lens)
        lo, hi = mm["min"].as_py(), mm["max"].as_py()
        self.len_min = lo if self.len_min is None else min(self.len_min, lo)
        self.len_max = hi if self.len_max is None else max(self.len_max, hi)
        self.len_sum += pc.sum(lens).as_py()
        if not self.counting:
            self.distinct.add(valid)
            return
        vc = pc.value_counts(valid)
        self._counts.append(pa.table({"value": vc.field(0), "count": vc.field(1)}))
        self._pending += len(vc)
        if len(vc) > DISTINCT_CAP or self._pending > 2 * DISTINCT_CAP:
            self._merge()

    def _merge(self) -> pa.Table | None:
        if not self.counting:
            return None
        if not self._counts:
            return pa.table({"value": pa.array([], pa.string()), "count": pa.array([], pa.int64())})
        merged = pa.concat_tables(self._counts)
        if len(self._counts) > 1:
            merged = merged.group_by("value").aggregate([("count", "sum")])
            merged = merged.rename_columns(["value", "count"])
        if merged.num_rows > DISTINCT_CAP:
            self.distinct.add(merged["value"])
            self.counting = False
            self._counts, self._pending = [], 0
            return None
        self._counts, self._pending = [merged], merged.num_rows
        return merged

    def distinct_count(self) -> int:
        counts = self._merge()
        return self.distinct.count() if counts is None else counts.num_rows

    def distinct_exact(self) -> bool:
        self._merge()
        return self.counting

    def top(self) -> list[dict[str, Any]] | None:
        """Exact top values, or None once counting stopped."""
        counts = self._merge()
        if counts is None:
            return None
        t = counts.sort_by([("count", "descending"), ("value", "ascending")]).slice(0, TOP_K)
        return [
            {"value": v, "count": c}
            for v, c in zip(t["value"].to_pylist(), t["count"].to_pylist(), strict=True)
        ]

    def result(self) -> dict[str, Any]:
        out = super().result()
        out["length_bytes"] = {
            "min": self.len_min,
            "max": self.len_max,
            "mean": self.len_sum / self.count if self.count else None,
        }
        return out


def accumulator_for(dtype: pa.DataType) -> ColumnAccumulator:
    """The accumulator suited to a storage type."""
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype):
        return NumericAccumulator(dtype)
    if pa.types.is_boolean(dtype):
        return BooleanAccumulator(dtype)
    if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype):
        return TemporalAccumulator(dtype)
    return StringAccumulator(dtype)
