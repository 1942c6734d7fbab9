"""Turning an uploaded file into a typed Parquet dataset version and its profile.

The entry points are pure: a local file in, a local Parquet file and a
description out. The API layer streams the upload to a temporary file, calls
:func:`ingest_file` (or :func:`append_file` for a new version that adds rows),
then stores ``out`` as an immutable artifact.

One pass reads, checks, profiles and writes each block; a second pass runs
only when a later block forced a column to a wider type or revealed quoted
line breaks (see :mod:`openmaas.ml.data.blocks`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from openmaas.errors import InvalidFile, InvalidInput, UnsupportedFormat
from openmaas.ml.data.blocks import CoercionError, Restart
from openmaas.ml.data.growing import Src
from openmaas.ml.data.profile import Profiler
from openmaas.ml.data.readers import open_source
from openmaas.ml.data.schema import (
    FORMATS,
    ColumnKind,
    ColumnSchema,
    Format,
    IngestResult,
    Limits,
    check_kind,
    type_for_kind,
)
from openmaas.ml.data.sink import ParquetSink
from openmaas.ml.data.validate import check_values

MAX_PASSES = 6
_PROFILE_BATCH_ROWS = 1 << 17
_PROFILE_PENDING = 1


def ingest_file(
    src: Src,
    fmt: Format,
    out: Path,
    *,
    overrides: Mapping[str, ColumnKind] | None = None,
    target: str | None = None,
    limits: Limits = Limits(),
    sample_rows: int = 10_000,
    seed: int = 0,
) -> IngestResult:
    """Parse ``src``, write it typed to ``out`` and profile it, in one streamed pass.

    ``overrides`` force column kinds (e.g. an integer id to ``categorical``);
    ``target`` adds each column's association with that column to the profile.
    Raises :class:`InvalidFile` for bad content and :class:`InvalidInput` for
    bad arguments, naming the column and 1-based data row where there is one.
    """
    fmt = _check_format(fmt)
    kinds = {name: check_kind(kind, column=name) for name, kind in (overrides or {}).items()}
    quote_aware = False
    hint: dict[str, pa.DataType] | None = None
    for _ in range(MAX_PASSES):
        try:
            source = open_source(src, fmt, limits, quote_aware=quote_aware, types=hint)
            _check_names(source.names, kinds, target)
            types = hint or {
                n: type_for_kind(kinds[n], t) if n in kinds else t
                for n, t in source.inferred.items()
            }
            return _write(
                [], source.read(types, dict(kinds)), out,
                limits=limits, sample_rows=sample_rows, seed=seed,
                kinds=kinds, target=target,
            )  # fmt: skip
        except Restart as r:
            quote_aware = quote_aware or r.quote_aware
            hint = None if r.quote_aware else r.types
        except CoercionError as e:
            raise InvalidInput(
                f"column {e.column!r} cannot be read as {kinds[e.column]}: "
                f"row {e.row} holds {_short(e.value)!r}",
                details={"column": e.column, "row": e.row, "value": _short(e.value)},
            ) from None
    raise InvalidFile("the column types of the file did not settle")  # pragma: no cover


def append_file(
    base_parquet: Path,
    base_columns: list[ColumnSchema],
    src: Src,
    fmt: Format,
    out: Path,
    *,
    target: str | None = None,
    limits: Limits = Limits(),
    sample_rows: int = 10_000,
    seed: int = 0,
) -> IngestResult:
    """A new version: the rows of ``base_parquet`` followed by those of ``src``.

    ``src`` must have the same column names (in any order); its values are
    read as the base version's types, and one that does not fit raises
    :class:`InvalidFile` naming the column and the row of ``src``.
    """
    fmt = _check_format(fmt)
    base = pq.ParquetFile(base_parquet)
    schema = base.schema_arrow
    names = [c.name for c in base_columns]
    if names != schema.names:
        raise InvalidInput(
            "base_columns do not match the base Parquet file",
            details={"columns": names, "parquet_columns": schema.names},
        )
    types = {f.name: f.type for f in schema}
    kinds = {c.name: c.kind for c in base_columns}
    _check_names(names, {}, target)
    quote_aware = False
    for _ in range(2):
        try:
            source = open_source(src, fmt, limits, quote_aware=quote_aware, types=types)
            _check_same_columns(names, source.names)
            source.strict_columns = True
            new = (t.select(names) for t in source.read(types, dict.fromkeys(names)))
            return _write(
                _batches(base), new, out,
                limits=limits, sample_rows=sample_rows, seed=seed,
                kinds=kinds, target=target, base_rows=base.metadata.num_rows,
            )  # fmt: skip
        except Restart:
            quote_aware = True
        except CoercionError as e:
            raise InvalidFile(
                f"column {e.column!r}, row {e.row}: {_short(e.value)!r} does not fit "
                f"the dataset's type {e.dtype}",
                details={
                    "column": e.column,
                    "row": e.row,
                    "value": _short(e.value),
                    "expected": str(e.dtype),
                },
            ) from None
    raise InvalidFile("the file could not be read")  # pragma: no cover


def compute_profile(
    parquet: Path,
    columns: list[ColumnSchema],
    *,
    target: str | None = None,
    sample_rows: int = 10_000,
    seed: int = 0,
) -> dict[str, object]:
    """The profile of a dataset version already written, e.g. to add a target."""
    f = pq.ParquetFile(parquet)
    _check_names([c.name for c in columns], {}, target)
    profiler = Profiler(f.schema_arrow, sample_rows=sample_rows, seed=seed)
    for table in _batches(f):
        profiler.add(table)
    return profiler.result(columns, target=target)


def _write(
    base: Iterable[pa.Table],
    new: Iterable[pa.Table],
    out: Path,
    *,
    limits: Limits,
    sample_rows: int,
    seed: int,
    kinds: Mapping[str, ColumnKind],
    target: str | None,
    base_rows: int = 0,
) -> IngestResult:
    rows = 0
    profiler: Profiler | None = None
    profiling: deque[Future[None]] = deque()
    with (
        ParquetSink(out) as sink,
        ThreadPoolExecutor(1, thread_name_prefix="openmaas-profile") as pool,
    ):
        for table, trusted in _tagged(base, new):
            if not trusted:
                table = _storage(check_values(table, rows - base_rows, limits))
            if table.num_rows == 0:
                continue
            rows += table.num_rows
            if rows > limits.max_rows:
                raise InvalidFile(
                    f"the file has more than {limits.max_rows:,} rows (the limit)",
                    details={"row": limits.max_rows + 1 - base_rows, "limit": limits.max_rows},
                )
            if profiler is None:
                profiler = Profiler(table.schema, sample_rows=sample_rows, seed=seed)
            # One profiling thread (tables in file order, so the sample is reproducible)
            # beside the Parquet writer's: this thread goes on to read the next block.
            profiling.append(pool.submit(profiler.add, table))
            while len(profiling) > _PROFILE_PENDING:
                profiling.popleft().result()
            sink.write(table)
        while profiling:
            profiling.popleft().result()
        if profiler is None:
            raise InvalidFile("the file has no data rows")
        columns = profiler.kinds(kinds)
        profile = profiler.result(columns, target=target)
        size = sink.commit()
        digest = sink.sha256
    return IngestResult(rows, columns, profile, out, size, digest)


def _tagged(base: Iterable[pa.Table], new: Iterable[pa.Table]) -> Iterator[tuple[pa.Table, bool]]:
    for t in base:
        yield t, True
    for t in new:
        yield t, False


def _batches(f: pq.ParquetFile) -> Iterator[pa.Table]:
    for batch in f.iter_batches(batch_size=_PROFILE_BATCH_ROWS):
        yield pa.Table.from_batches([batch])


def _storage(table: pa.Table) -> pa.Table:
    """All-missing columns are stored as strings (Parquet readers handle them best)."""
    for i, f in enumerate(table.schema):
        if pa.types.is_null(f.type):
            table = table.set_column(i, f.name, table.column(i).cast(pa.string()))
    return table


def _check_format(fmt: str) -> Format:
    if fmt not in FORMATS:
        raise UnsupportedFormat(
            f"unsupported format {fmt!r}; choose from {', '.join(FORMATS)}",
            details={"format": fmt},
        )
    return fmt  # type: ignore[return-value]


def _check_names(names: list[str], kinds: Mapping[str, str], target: str | None) -> None:
    known = set(names)
    for name in kinds:
        if name not in known:
            raise InvalidInput(f"override names unknown column {name!r}", details={"column": name})
    if target is not None and target not in known:
        raise InvalidInput(f"unknown target column {target!r}", details={"column": target})


def _check_same_columns(expected: list[str], got: list[str]) -> None:
    missing = [n for n in expected if n not in set(got)]
    extra = [n for n in got if n not in set(expected)]
    if missing or extra:
        raise InvalidFile(
            f"the file's columns differ from the dataset's: missing {missing}, unexpected {extra}",
            details={"missing": missing, "unexpected": extra},
        )


def _short(value: object, limit: int = 50) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"
