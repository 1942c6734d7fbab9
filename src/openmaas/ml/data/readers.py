"""Opening an input file in one of the supported formats.

Every source exposes the same three things: ``names`` (checked column names),
``inferred`` (storage types guessed from the first block) and
``read(types, fixed)``, an iterator of typed tables in file order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

import pyarrow as pa

from openmaas.ml.data.csv_format import CsvFormat
from openmaas.ml.data.growing import Src, as_path
from openmaas.ml.data.jsonl_format import JsonlFormat
from openmaas.ml.data.parquet_format import ParquetFormat
from openmaas.ml.data.schema import ColumnKind, Format, Limits


class Source(Protocol):
    names: list[str]
    inferred: dict[str, pa.DataType]
    strict_columns: bool

    def read(
        self, types: Mapping[str, pa.DataType], fixed: Mapping[str, ColumnKind | None]
    ) -> Iterator[pa.Table]: ...


def open_source(
    src: Src,
    fmt: Format,
    limits: Limits,
    *,
    quote_aware: bool = False,
    types: Mapping[str, pa.DataType] | None = None,
) -> Source:
    """The reader for ``fmt``; ``types`` (from an earlier pass) may name columns."""
    if fmt == "csv":
        return CsvFormat(src, limits, quote_aware=quote_aware)
    if fmt == "jsonl":
        return JsonlFormat(src, limits, types=types)
    return ParquetFormat(as_path(src), limits)
