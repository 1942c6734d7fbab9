"""CSV input: header, type inference, block parsing and precise errors.

Dialect: comma-separated, ``"`` quotes (doubled inside a quoted field), UTF-8
with an optional BOM, ``\\n``, ``\\r\\n`` or ``\\r`` line ends, blank lines
ignored. Missing values: an empty field and ``NA``, ``N/A``, ``null``,
``NULL``, ``NaN``, ``nan``, ``None``. Booleans: ``true``/``false`` and
``yes``/``no`` in lower, title and upper case; ``1``/``0`` are read as numbers
unless the column is overridden to ``boolean``. Datetimes: ISO 8601 dates and
timestamps (with an optional zone offset).

Happy-path parsing is entirely Arrow's; the slow paths here (a serial
re-parse, a scan with Python's ``csv`` module) run only once a block has
failed, to say which row and column are at fault.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Generator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from openmaas.errors import InvalidFile
from openmaas.ml.data import blocks as _blocks
from openmaas.ml.data.blocks import Block, BlockFormat, BlockReader, Restart
from openmaas.ml.data.growing import Src, open_binary
from openmaas.ml.data.schema import Limits, normalise_type
from openmaas.ml.data.validate import check_names

NULL_VALUES = ["", "NA", "N/A", "null", "NULL", "NaN", "nan", "None"]
TRUE_VALUES = ["true", "True", "TRUE", "yes", "Yes", "YES", "1"]
FALSE_VALUES = ["false", "False", "FALSE", "no", "No", "NO", "0"]
ARROW_CHUNK_BYTES = 4 << 20
MAX_RECORD_BYTES = 256 << 20
_BOM = b"\xef\xbb\xbf"
_CONVERSION = re.compile(
    r"In CSV column #(\d+): CSV conversion error to [^:]+: invalid value '(.*)'\Z", re.S
)
_BAD_UTF8 = re.compile(r"In CSV column #(\d+): CSV conversion error to \w+: invalid UTF8")


class CsvFormat(BlockFormat):
    """A CSV file with a header row; see the module docstring for the dialect."""

    def __init__(self, src: Src, limits: Limits, *, quote_aware: bool = False) -> None:
        self.src = src
        self.limits = limits
        self.quote_aware = quote_aware
        self.block_bytes = _blocks.BLOCK_BYTES
        with open_binary(src) as f:
            head = f.read(self.block_bytes)
        start = len(_BOM) if head.startswith(_BOM) else 0
        while start < len(head) and head[start] in b"\r\n":
            start += 1
        if start >= len(head):
            raise InvalidFile("the file is empty")
        end = _header_end(head, start)
        if end == len(head) == self.block_bytes:
            raise InvalidFile(f"the header row is longer than {self.block_bytes:,} bytes")
        self.names = check_names(_parse_header(head[start:end]), limits)
        self.data_start = end
        self.max_record = min(len(self.names) * (limits.max_field_bytes + 3) + 2, MAX_RECORD_BYTES)
        gen = self._blocks()
        first = next(gen, None)
        gen.close()
        table = None if first is None else self._parse_or_diagnose(first)
        if table is None or (table.num_rows == 0 and first is not None and first.final):
            raise InvalidFile("the file has a header but no data rows")
        self.inferred = {
            n: normalise_type(t) for n, t in zip(self.names, table.schema.types, strict=True)
        }
        self._first: pa.Table | None = table  # reused by the first read() if types agree

    # -- parsing -----------------------------------------------------------------

    def _blocks(self) -> Generator[Block, None, None]:
        with open_binary(self.src) as f:
            f.seek(self.data_start)
            yield from BlockReader(
                f,
                block_bytes=self.block_bytes,
                quote_aware=self.quote_aware,
                max_record_bytes=self.max_record,
            )

    def _options(
        self, *, threads: bool = True, handler: object = None
    ) -> tuple[pacsv.ReadOptions, pacsv.ParseOptions]:
        read = pacsv.ReadOptions(
            column_names=self.names, use_threads=threads, block_size=ARROW_CHUNK_BYTES
        )
        parse = pacsv.ParseOptions(newlines_in_values=self.quote_aware, invalid_row_handler=handler)
        return read, parse

    def _read(
        self,
        block: Block,
        types: Mapping[str, pa.DataType] | None,
        *,
        include: list[str] | None = None,
        threads: bool = True,
        handler: object = None,
    ) -> pa.Table:
        read, parse = self._options(threads=threads, handler=handler)
        convert = pacsv.ConvertOptions(
            column_types=dict(types) if types else None,
            null_values=NULL_VALUES,
            true_values=TRUE_VALUES,
            false_values=FALSE_VALUES,
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
            include_columns=include,
        )
        return pacsv.read_csv(
            pa.py_buffer(block.data),
            read_options=read,
            parse_options=parse,
            convert_options=convert,
        )

    def _parse(self, block: Block, types: Mapping[str, pa.DataType]) -> pa.Table:
        first, self._first = self._first, None
        table = _reuse(first, types) if block.index == 0 and first is not None else None
        if table is None:
            table = self._read(block, types)
        if not self.quote_aware:
            block.one_row_per_line = table.num_rows == _count_lines(block.data)
        return table

    def _parse_or_diagnose(self, block: Block) -> pa.Table:
        try:
            return self._read(block, None)
        except pa.ArrowInvalid as e:
            raise self._diagnose(block, e, 0) from None

    def _infer(self, block: Block) -> dict[str, pa.DataType]:
        table = self._parse_or_diagnose(block)
        return {n: normalise_type(t) for n, t in zip(self.names, table.schema.types, strict=True)}

    # -- what went wrong -----------------------------------------------------------

    def _conflict(
        self, block: Block, exc: Exception, types: Mapping[str, pa.DataType]
    ) -> tuple[str, object] | None:
        m = _CONVERSION.search(str(exc))
        return None if m is None else (self.names[int(m.group(1))], m.group(2))

    def _locate(self, block: Block, column: str, value: object) -> int | None:
        col = self._read(block, {column: pa.string()}, include=[column])[column]
        idx = pc.index(col, value).as_py()
        return None if idx < 0 else int(idx)

    def _diagnose(self, block: Block, exc: Exception, rows_before: int) -> Exception:
        msg = str(exc)
        m = _BAD_UTF8.search(msg)
        if m:
            return self._encoding_error(block, self.names[int(m.group(1))], rows_before)
        if "CSV parse error" in msg:
            if not self.quote_aware and _has_quote(block):
                return Restart(quote_aware=True)
            unclosed = self._unclosed_quote(block, rows_before) if block.final else None
            if unclosed is not None:
                return unclosed
            bad = self._first_ragged_row(block)
            if bad is not None:
                number, expected, got = bad
                row = rows_before + number
                return InvalidFile(
                    f"row {row} has {got} columns, expected {expected}",
                    details={"row": row, "expected": expected, "got": got},
                )
        return InvalidFile(
            f"cannot parse the CSV file after row {rows_before}: {msg}",
            details={"row": rows_before + 1},
        )

    def _first_ragged_row(self, block: Block) -> tuple[int, int, int] | None:
        found: list[tuple[int, int, int]] = []

        def handler(row: pacsv.InvalidRow) -> str:
            found.append((row.number or 0, row.expected_columns, row.actual_columns))
            return "error"

        as_text = dict.fromkeys(self.names, pa.string())
        with contextlib.suppress(pa.ArrowInvalid):
            self._read(block, as_text, threads=False, handler=handler)
        return found[0] if found else None

    def _encoding_error(self, block: Block, column: str, rows_before: int) -> InvalidFile:
        values = self._read(block, {column: pa.binary()}, include=[column])[column].to_pylist()
        for i, v in enumerate(values):
            try:
                if v is not None:
                    v.decode("utf-8")
            except UnicodeDecodeError:
                row = rows_before + i + 1
                return InvalidFile(
                    f"column {column!r}, row {row}: the text is not valid UTF-8 "
                    "(save the file as UTF-8)",
                    details={"column": column, "row": row},
                )
        return InvalidFile(
            f"column {column!r}: the text is not valid UTF-8 (save the file as UTF-8)",
            details={"column": column},
        )

    def _check(self, block: Block, table: pa.Table, rows_before: int) -> None:
        """Catch what a successful parse can hide: quoted line breaks, an open quote."""
        unclosed = self._unclosed_quote(block, rows_before) if block.final else None
        if unclosed is not None:
            raise unclosed
        if self.quote_aware or block.one_row_per_line or not _has_quote(block):
            return
        for col in table.columns:
            if pa.types.is_string(col.type) and (
                pc.any(pc.match_substring(col, "\n")).as_py()
                or pc.any(pc.match_substring(col, "\r")).as_py()
            ):
                raise Restart(quote_aware=True)

    def _unclosed_quote(self, block: Block, rows_before: int) -> InvalidFile | None:
        """The error for a final block ending inside a quoted field, if it does."""
        data = block.data.obj
        n = len(block.data)
        if not isinstance(data, bytearray):
            data = bytearray(block.data)
        if self.quote_aware:
            if not data.count(b'"', 0, n) & 1:
                return None
            start = _record_start(data, data.rfind(b'"', 0, n))
        else:
            if n == 0 or data[n - 1] in b"\r\n":
                return None
            start = max(data.rfind(b"\n", 0, n), data.rfind(b"\r", 0, n)) + 1
            last = bytes(data[start:n]).decode("utf-8", "replace")
            if '"' not in last or _csv_line_ok(last):
                return None
        prefix = Block(block.index, memoryview(data)[:start], False)
        rows = self._read(prefix, dict.fromkeys(self.names, pa.string())).num_rows if start else 0
        row = rows_before + rows + 1
        return InvalidFile(
            f"row {row}: a quoted field is never closed (unbalanced quotes)",
            details={"row": row},
        )


def _reuse(table: pa.Table, types: Mapping[str, pa.DataType]) -> pa.Table | None:
    """The inference parse of the first block, if it has (or casts losslessly to) ``types``."""
    for i, f in enumerate(table.schema):
        want = types[f.name]
        if f.type == want:
            continue
        lossless = (
            pa.types.is_timestamp(f.type)
            and pa.types.is_timestamp(want)
            and f.type.tz == want.tz
            and f.type.unit in ("s", "ms")
            and want.unit in ("us", "ns")
        )
        if not lossless:
            return None
        table = table.set_column(i, f.name, table.column(i).cast(want))
    return table


def _count_lines(data: memoryview) -> int:
    """Lines in ``data``: line breaks, plus one for a last line without one."""
    if not len(data):
        return 0
    b = np.frombuffer(data, dtype=np.uint8)
    breaks = int(np.count_nonzero(b == 10)) or int(np.count_nonzero(b == 13))
    return breaks + (b[-1] not in (10, 13))


def _has_quote(block: Block) -> bool:
    data = block.data.obj
    if isinstance(data, bytearray):
        return data.find(b'"', 0, len(block.data)) >= 0
    return b'"' in bytes(block.data)


def _record_start(data: bytearray, quote: int) -> int:
    """Start of the record holding the unmatched quote at ``quote``."""
    odd = 0
    pos = quote
    while True:
        nl = data.rfind(b"\n", 0, pos)
        if nl < 0:
            return 0
        odd ^= data.count(b'"', nl, pos) & 1
        if not odd:
            return nl + 1
        pos = nl


def _csv_line_ok(line: str) -> bool:
    try:
        list(csv.reader(io.StringIO(line), strict=True))
    except csv.Error:
        return False
    return True


def _header_end(head: bytes, start: int) -> int:
    """Offset just past the header row (which may hold quoted line breaks)."""
    pos = start
    while True:
        nl = head.find(b"\n", pos)
        if nl < 0:
            nl = head.find(b"\r", pos)
        if nl < 0:
            return len(head)
        if not head.count(b'"', start, nl) & 1:
            return nl + 1
        pos = nl + 1


def _parse_header(header: bytes) -> list[str]:
    try:
        header.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidFile(
            "the header row is not valid UTF-8 (save the file as UTF-8)",
            details={"row": 0},
        ) from None
    table = pacsv.read_csv(
        io.BytesIO(header),
        read_options=pacsv.ReadOptions(autogenerate_column_names=False),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
    )
    return list(table.column_names)
