"""The dataset profile: per-column statistics, a row sample and target associations.

:class:`Profiler` is fed the same batches that are written to Parquet, so a
profile costs no extra pass over the data. What is exact and what is estimated:

* exact over all rows: ``n_rows``, ``missing``, ``count``, ``min``/``max``,
  ``mean``, ``std`` (sample standard deviation, ddof=1), value lengths, and
  ``distinct`` and ``top`` values while a column has at most 100,000 distinct
  values (else ``distinct`` is a HyperLogLog estimate, ``distinct_approx: true``,
  and ``top`` is estimated from the reservoir, ``top_approx: true``);
* from a uniform reservoir of up to 100,000 rows (all rows of smaller files,
  so exact there): numeric ``quantiles`` (linear interpolation), ``histogram``
  (20 equal bins from the exact min to max, counts of reservoir values, marked
  ``"source": "sample"``) and Pearson correlations with the target;
* from ``profile["sample"]`` (the first ``sample_rows`` rows of the reservoir by
  key, so itself uniform): mutual information with the target.

String columns become ``categorical`` when their exact distinct count is at
most ``max(50, 5 % of non-missing values)`` and at most half of them (values
repeat), else ``text``. Everything in the result is JSON-safe: no NaN or
infinity (``None`` instead), datetimes as ISO strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from openmaas.ml.data.accumulators import (
    TOP_K,
    BooleanAccumulator,
    ColumnAccumulator,
    NumericAccumulator,
    StringAccumulator,
    accumulator_for,
    finite,
    iso,
)
from openmaas.ml.data.association import associations
from openmaas.ml.data.schema import ColumnKind, ColumnSchema, kind_of_type
from openmaas.ml.data.sketches import Reservoir

PROFILE_VERSION = 1
RESERVOIR_ROWS = 100_000
RESERVOIR_BYTES = 64 << 20
SAMPLE_MAX_CELLS = 2_000_000
SAMPLE_TEXT_CHARS = 1_000
HIST_BINS = 20
QUANTILES = {"p1": 0.01, "p5": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "p99": 0.99}


class Profiler:
    """Accumulates a profile of a stream of tables sharing one schema."""

    def __init__(self, schema: pa.Schema, *, sample_rows: int, seed: int) -> None:
        self.schema = schema
        self.accs: dict[str, ColumnAccumulator] = {f.name: accumulator_for(f.type) for f in schema}
        self.sample_rows = max(0, min(sample_rows, SAMPLE_MAX_CELLS // max(1, len(schema))))
        self.seed = seed
        self.n_rows = 0
        self.reservoir: Reservoir | None = None

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if self.reservoir is None:
            row_bytes = max(1, table.nbytes // table.num_rows)
            size = max(self.sample_rows, min(RESERVOIR_ROWS, RESERVOIR_BYTES // row_bytes), 1)
            self.reservoir = Reservoir(size, self.seed)
        for name, col in zip(table.column_names, table.columns, strict=True):
            self.accs[name].add(col)
        self.reservoir.add(table)
        self.n_rows += table.num_rows

    def kinds(self, overrides: Mapping[str, ColumnKind] | None = None) -> list[ColumnSchema]:
        """Each column's kind: the override if any, else inferred from type and counts."""
        out = []
        for f in self.schema:
            kind = (overrides or {}).get(f.name) or kind_of_type(f.type)
            acc = self.accs[f.name]
            if kind == "text" and f.name not in (overrides or {}):
                kind = "categorical" if _is_categorical(acc) else "text"
            out.append(ColumnSchema(f.name, kind, str(f.type)))
        return out

    def result(self, columns: list[ColumnSchema], *, target: str | None = None) -> dict[str, Any]:
        """The profile as a JSON-safe dict, given each column's final kind."""
        sample_all, _ = self.reservoir.sample() if self.reservoir else (None, None)
        sample, _ = self.reservoir.sample(self.sample_rows) if self.reservoir else (None, None)
        out: dict[str, Any] = {
            "version": PROFILE_VERSION,
            "n_rows": self.n_rows,
            "n_columns": len(columns),
            "reservoir_rows": 0 if sample_all is None else sample_all.num_rows,
            "sample_rows": 0 if sample is None else sample.num_rows,
            "seed": self.seed,
            "columns": {},
        }
        for c in columns:
            col = None if sample_all is None else sample_all[c.name]
            out["columns"][c.name] = _column_result(c, self.accs[c.name], col)
        out["sample"] = _sample_lists(sample, columns)
        if target is not None:
            out["target"] = {
                "column": target,
                "associations": associations(columns, target, sample_all, sample, seed=self.seed),
            }
        return out


def _is_categorical(acc: ColumnAccumulator) -> bool:
    if not acc.distinct_exact() or acc.count == 0:
        return False
    d = acc.distinct_count()
    return d <= max(50, 0.05 * acc.count) and d <= 0.5 * acc.count


def _column_result(
    c: ColumnSchema, acc: ColumnAccumulator, sample: pa.ChunkedArray | None
) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": c.kind, **acc.result()}
    if isinstance(acc, NumericAccumulator):
        vals = _numeric_values(sample)
        out["quantiles"] = _quantiles(vals)
        out["histogram"] = _histogram(vals, acc.min, acc.max)
    elif isinstance(acc, BooleanAccumulator):
        out["top"] = acc.top()
        out["top_approx"] = False
    elif isinstance(acc, StringAccumulator):
        top = acc.top()
        out["top_approx"] = top is None
        out["top"] = top if top is not None else _sample_top(sample, acc.count)
    return out


def _numeric_values(col: pa.ChunkedArray | None) -> np.ndarray:
    if col is None:
        return np.empty(0)
    valid = col.drop_null()
    return np.asarray(valid.cast(pa.float64()).to_numpy(), dtype=np.float64)


def _quantiles(vals: np.ndarray) -> dict[str, float | None]:
    if vals.size == 0:
        return dict.fromkeys(QUANTILES)
    qs = np.quantile(vals, list(QUANTILES.values()))
    return {k: finite(q) for k, q in zip(QUANTILES, qs, strict=True)}


def _histogram(vals: np.ndarray, lo: Any, hi: Any) -> dict[str, Any]:
    if vals.size == 0 or lo is None:
        return {"edges": [], "counts": [], "source": "sample", "sample_size": 0}
    lo, hi = float(lo), float(hi)
    if lo == hi:
        edges, counts = np.array([lo, hi]), np.array([vals.size])
    else:
        counts, edges = np.histogram(vals, bins=HIST_BINS, range=(lo, hi))
    return {
        "edges": [finite(e) for e in edges],
        "counts": [int(c) for c in counts],
        "source": "sample",
        "sample_size": int(vals.size),
    }


def _sample_top(col: pa.ChunkedArray | None, count: int) -> list[dict[str, Any]]:
    """Top values estimated from the reservoir, counts scaled to all rows."""
    if col is None:
        return []
    valid = col.drop_null()
    if len(valid) == 0:
        return []
    vc = pc.value_counts(valid.combine_chunks())
    t = pa.table({"value": vc.field(0), "count": vc.field(1)})
    t = t.sort_by([("count", "descending"), ("value", "ascending")]).slice(0, TOP_K)
    scale = count / len(valid)
    return [
        {"value": v, "count": round(c * scale)}
        for v, c in zip(t["value"].to_pylist(), t["count"].to_pylist(), strict=True)
    ]


def _sample_lists(sample: pa.Table | None, columns: list[ColumnSchema]) -> dict[str, list[Any]]:
    """The sample as JSON-safe columnar lists."""
    out: dict[str, list[Any]] = {}
    for c in columns:
        if sample is None:
            out[c.name] = []
            continue
        values = sample[c.name].to_pylist()
        if pa.types.is_floating(sample.schema.field(c.name).type):
            values = [finite(v) for v in values]
        elif pa.types.is_string(sample.schema.field(c.name).type):
            values = [v if v is None else v[:SAMPLE_TEXT_CHARS] for v in values]
        else:
            values = [iso(v) for v in values]
        out[c.name] = values
    return out
