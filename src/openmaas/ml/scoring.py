"""Batch scoring: a model's predictions for every row of a file, in bounded memory.

Input is read as Arrow tables (a Parquet file batch by batch, CSV and JSON
Lines in blocks by the dataset readers), cut into slices of ``BATCH_ROWS``
rows, predicted slice by slice and appended to a Parquet result file:

    row       int64    0-based position of the input row
    prediction         what the model's ``predict`` gives
    proba_<c>  float64  one column per class, when the model gives probabilities

Memory is a few input blocks (one Parquet row group, or about 200 MiB of CSV
buffers) plus one slice, whatever the file's size. Pure
computation: files in, files out; the job handler does the storing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from openmaas.errors import InvalidFile, InvalidInput
from openmaas.ml.data.blocks import Restart
from openmaas.ml.data.growing import Src, as_path
from openmaas.ml.data.readers import open_source
from openmaas.ml.data.schema import Limits
from openmaas.ml.flavors import Predictor, Signature

BATCH_ROWS = 1 << 16
INPUT_FORMATS = ("csv", "parquet", "jsonl")
MAX_PASSES = 4
_UNSAFE = re.compile(r"[^0-9A-Za-z_.-]")
Progress = Callable[[int], None]


@dataclass
class Scored:
    """What a scoring pass produced."""

    rows: int
    columns: list[str] = field(default_factory=list)
    classes: list[Any] | None = None


def check_format(fmt: str) -> str:
    if fmt not in INPUT_FORMATS:
        raise InvalidInput(
            f"unsupported input format {fmt!r}; use one of {', '.join(INPUT_FORMATS)}",
            details={"field": "format"},
        )
    return fmt


def input_columns(src: Src, fmt: str, limits: Limits = Limits()) -> list[str]:
    """The column names of an input file (reads the header, or the Parquet footer)."""
    check_format(fmt)
    if fmt == "parquet":
        try:
            return list(pq.ParquetFile(as_path(src)).schema_arrow.names)
        except (pa.ArrowException, OSError) as e:
            raise InvalidFile(f"not a valid Parquet file: {e}") from None
    return list(open_source(src, fmt, limits).names)  # type: ignore[arg-type]


def check_columns(names: Sequence[str], signature: Signature) -> None:
    """Raise naming every signature column the input lacks (extra columns are ignored)."""
    have = set(names)
    missing = [c for c in signature.names if c not in have]
    if missing:
        shown = ", ".join(repr(c) for c in missing[:20])
        more = f" (and {len(missing) - 20} more)" if len(missing) > 20 else ""
        raise InvalidInput(
            f"the input lacks column(s) the model reads: {shown}{more}",
            details={"field": "columns", "missing": missing[:100]},
        )


def score_file(
    src: Path,
    fmt: str,
    predictor: Predictor,
    signature: Signature,
    out: Path,
    *,
    limits: Limits = Limits(),
    batch_rows: int = BATCH_ROWS,
    progress: Progress | None = None,
) -> Scored:
    """Predict every row of ``src`` and write the result to ``out`` (Parquet).

    ``progress`` is told the rows scored so far after each input table.
    """
    check_format(fmt)
    check_columns(input_columns(src, fmt, limits), signature)
    if fmt == "parquet":
        tables = _parquet_tables(src, signature, batch_rows)
        return score_tables(tables, predictor, signature, out, progress=progress)
    hint: dict[str, pa.DataType] | None = None
    for _ in range(MAX_PASSES):  # a column widened after rows were scored: start over
        try:
            source = open_source(src, fmt, limits, types=hint)  # type: ignore[arg-type]
            tables = source.read(hint or source.inferred, {})
            return score_tables(
                tables, predictor, signature, out, batch_rows=batch_rows, progress=progress
            )
        except Restart as r:
            hint = r.types
    raise InvalidFile("the column types of the file did not settle")  # pragma: no cover


def _parquet_tables(src: Path, signature: Signature, batch_rows: int) -> Iterator[pa.Table]:
    """The signature's columns, one row group at a time: ``iter_batches`` over the whole
    file reads row groups ahead (about 200 MiB buffered for a 230 MiB file)."""
    f = pq.ParquetFile(src)
    try:
        for group in range(f.num_row_groups):
            batches = f.iter_batches(batch_rows, row_groups=[group], columns=signature.names)
            for batch in batches:
                yield pa.Table.from_batches([batch])
    except (pa.ArrowException, OSError) as e:
        raise InvalidFile(f"the Parquet file is damaged: {e}") from None


def score_tables(
    tables: Iterator[pa.Table] | Sequence[pa.Table],
    predictor: Predictor,
    signature: Signature,
    out: Path,
    *,
    batch_rows: int = BATCH_ROWS,
    progress: Progress | None = None,
) -> Scored:
    """Predict the rows of ``tables`` slice by slice, appending to ``out``."""
    rows = 0
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    try:
        for table in tables:
            check_columns(table.column_names, signature)
            table = table.select(signature.names)
            for start in range(0, table.num_rows, batch_rows):
                part = table.slice(start, batch_rows)
                result = _predict(predictor, signature, part, rows)
                if writer is None:
                    schema = result.schema
                    writer = pq.ParquetWriter(out, schema, compression="zstd")
                assert schema is not None
                writer.write_table(_conform(result, schema))
                rows += part.num_rows
            if progress is not None:
                progress(rows)
        if writer is None:  # no rows: an empty result with the fixed columns
            schema = pa.schema([("row", pa.int64()), ("prediction", pa.float64())])
            writer = pq.ParquetWriter(out, schema, compression="zstd")
    finally:
        if writer is not None:
            writer.close()
    assert schema is not None
    return Scored(rows, list(schema.names), predictor.classes)


def _predict(predictor: Predictor, signature: Signature, part: pa.Table, first: int) -> pa.Table:
    X = _matrix(part, signature) if predictor.matrix_input else part.to_pandas()
    try:
        output = predictor.predict(X)
    except (InvalidInput, InvalidFile):
        raise
    except Exception as e:  # the model fails on these rows: the input's fault
        raise InvalidInput(
            f"the model could not predict rows {first + 1} to {first + part.num_rows}: {e}",
            details={"row": first + 1},
        ) from None
    n = part.num_rows
    predictions = np.asarray(output.predictions)
    if predictions.ndim != 1 or len(predictions) != n:
        predictions = predictions.reshape(n, -1)
        if predictions.shape[1] != 1:  # several outputs (multi-target): one column each
            columns: dict[str, Any] = {"row": np.arange(first, first + n, dtype=np.int64)}
            for j in range(predictions.shape[1]):
                columns[f"prediction_{j}"] = predictions[:, j]
            return pa.table(columns)
        predictions = predictions[:, 0]
    columns = {
        "row": np.arange(first, first + n, dtype=np.int64),
        "prediction": pa.array(predictions),
    }
    proba = output.probabilities
    if proba is not None:
        proba = np.asarray(proba, dtype=np.float64).reshape(n, -1)
        classes = predictor.classes or list(range(proba.shape[1]))
        for j, c in enumerate(classes[: proba.shape[1]]):
            columns[f"proba_{_UNSAFE.sub('_', str(c))}"] = proba[:, j]
    return pa.table(columns)


def _matrix(part: pa.Table, signature: Signature) -> np.ndarray:
    """A float64 matrix in signature order; booleans are 0/1, nulls NaN, text an error."""
    X = np.empty((part.num_rows, len(signature.names)), dtype=np.float64)
    for j, name in enumerate(signature.names):
        column = part.column(name)
        t = column.type
        if pa.types.is_dictionary(t):
            column = column.cast(t.value_type)
            t = t.value_type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
                or pa.types.is_null(t) or pa.types.is_decimal(t)):  # fmt: skip
            raise InvalidInput(
                f"column {name!r} holds {t}, but the model reads numbers",
                details={"field": name},
            )
        X[:, j] = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return X


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    if table.schema.equals(schema):
        return table
    if table.schema.names != schema.names:
        raise InvalidInput("the model's output changed shape between batches")
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise InvalidInput(f"the model's output changed type between batches: {e}") from None
