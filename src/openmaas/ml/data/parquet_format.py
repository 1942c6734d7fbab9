"""Parquet input: already typed, so only names, supported types and casts to check.

Storage types are normalised (all integers to int64, all floats and decimals
to double, dictionary and large strings to string, UTF-8 binary to string,
timestamps to microseconds). Nested, binary and other types with no column
kind are rejected, naming the column.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from openmaas.errors import InvalidFile
from openmaas.ml.data.blocks import CoercionError
from openmaas.ml.data.coerce import cast_table
from openmaas.ml.data.schema import ColumnKind, Limits, normalise_type
from openmaas.ml.data.validate import check_names

BATCH_ROWS = 1 << 17


class ParquetFormat:
    """A Parquet file read in batches of ``BATCH_ROWS`` rows."""

    strict_columns = False

    def __init__(self, src: Path, limits: Limits) -> None:
        if src.stat().st_size == 0:
            raise InvalidFile("the file is empty")
        try:
            self.file = pq.ParquetFile(src)
            schema = self.file.schema_arrow
        except (pa.ArrowException, OSError) as e:
            raise InvalidFile(f"not a valid Parquet file: {e}") from None
        self.names = check_names(schema.names, limits)
        self.inferred = {
            name: _storage_type(name, f.type) for name, f in zip(self.names, schema, strict=True)
        }
        if self.file.metadata.num_rows == 0:
            raise InvalidFile("the file has no data rows")

    def read(
        self, types: Mapping[str, pa.DataType], fixed: Mapping[str, ColumnKind | None]
    ) -> Iterator[pa.Table]:
        rows_before = 0
        batches = self.file.iter_batches(batch_size=BATCH_ROWS)
        while True:
            try:
                batch = next(batches, None)
            except (pa.ArrowException, OSError) as e:
                raise InvalidFile(f"the Parquet file is damaged: {e}") from None
            if batch is None:
                return
            table = pa.Table.from_batches([batch]).rename_columns(self.names)
            try:
                table = cast_table(table, types, rows_before)
            except CoercionError as e:
                if e.column in fixed:
                    raise
                problem = (
                    "the text is not valid UTF-8"
                    if pa.types.is_string(e.dtype)
                    else f"{e.value!r} does not fit {e.dtype}"
                )
                raise InvalidFile(
                    f"column {e.column!r}, row {e.row}: {problem}",
                    details={"column": e.column, "row": e.row},
                ) from None
            rows_before += table.num_rows
            yield table


def _storage_type(name: str, t: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_integer(t):
        return pa.int64()
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return pa.float64()
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pa.string()  # must be UTF-8; checked while reading
    if pa.types.is_boolean(t) or pa.types.is_null(t) or pa.types.is_date32(t):
        return t
    if pa.types.is_date64(t):
        return pa.date32()
    if pa.types.is_timestamp(t) or pa.types.is_time(t):
        return normalise_type(t)
    what = "nested values" if pa.types.is_nested(t) else f"values of type {t}"
    raise InvalidFile(
        f"column {name!r} holds {what}, which have no column kind; "
        "flatten or convert it before upload",
        details={"column": name, "dtype": str(t)},
    )
