"""Text files read as large blocks cut at record boundaries, parsed in parallel.

Parsing a whole file at once needs memory for the whole table; a streaming
reader that parses small batches runs on one core. The middle road is to cut
the file into blocks of ~24 MiB at line breaks, parse each block with Arrow's
multi-threaded reader, and keep two blocks in flight so the parser, the
profiler and the Parquet writer overlap.

Types are inferred from the first block and then given explicitly, so every
block yields the same schema. When a later block contradicts them (an integer
column that holds ``1.5`` further down), the type is widened along
:func:`~openmaas.ml.data.schema.join_types`; because earlier blocks were
already written with the narrower type, the pass then only parses the rest of
the file to learn the final types and raises :class:`Restart`, and the caller
runs a second pass with them. That costs a second pass only in that rare case.

Line breaks inside quoted CSV fields make a cut at a line break unsafe; the CSV
format notices (a parsed value holds a line break) and restarts in a
quote-aware mode (:class:`Restart` with ``quote_aware=True``), where cuts are
made only where the number of quote characters before them is even.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Generator, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from io import BufferedReader

import pyarrow as pa

from openmaas.errors import InvalidFile
from openmaas.ml.data.schema import ColumnKind, join_types, kind_of_type

BLOCK_BYTES = 24 << 20  # with the tables in flight, what keeps a server under 1 GB
LOOKAHEAD = 2
SPARE_BUFFERS = LOOKAHEAD + 1


class Restart(Exception):
    """The pass must start over: with wider ``types``, or in quote-aware mode."""

    def __init__(
        self, *, types: dict[str, pa.DataType] | None = None, quote_aware: bool = False
    ) -> None:
        super().__init__("restart")
        self.types = types
        self.quote_aware = quote_aware


class RecordTooLong(Exception):
    """No record boundary within ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class CoercionError(Exception):
    """A value of a column whose type is fixed (override or append) does not fit it."""

    def __init__(self, column: str, row: int | None, value: object, dtype: pa.DataType) -> None:
        super().__init__(column)
        self.column, self.row, self.value, self.dtype = column, row, value, dtype


@dataclass
class Block:
    """Bytes ending at a record boundary; ``lines_before`` counts line breaks before it."""

    index: int
    data: memoryview
    final: bool
    lines_before: int = 0
    one_row_per_line: bool = False


class BlockReader:
    """Cuts a binary stream into blocks of about ``block_bytes`` at line breaks.

    With ``quote_aware`` a cut is moved back until an even number of ``"``
    precede it in the block, i.e. it is not inside a quoted field. A record
    longer than ``max_record_bytes`` raises :class:`RecordTooLong`.
    """

    def __init__(
        self,
        f: BufferedReader,
        *,
        block_bytes: int,
        quote_aware: bool,
        max_record_bytes: int,
        count_lines: bool = False,
    ) -> None:
        self.f = f
        self.block_bytes = block_bytes
        self.quote_aware = quote_aware
        self.max_record_bytes = max_record_bytes
        self.count_lines = count_lines

    def __iter__(self) -> Iterator[Block]:
        carry = b""
        index = lines = 0
        eof = False
        spare: list[bytearray] = []
        while not eof:
            size = len(carry) + self.block_bytes
            buf = _free_buffer(spare, size)
            buf[: len(carry)] = carry
            end = len(carry)
            while end < size:
                n = self.f.readinto(memoryview(buf)[end:size])
                if not n:
                    eof = True
                    break
                end += n
            cut = end if eof else self._cut(buf, end)
            if cut == 0 and not eof:
                if end > self.max_record_bytes:
                    raise RecordTooLong(self.max_record_bytes)
                carry = bytes(buf[:end])
                continue
            carry = bytes(memoryview(buf)[cut:end])
            if cut:
                yield Block(index, memoryview(buf)[:cut], eof, lines)
                index += 1
                if self.count_lines:
                    lines += buf.count(b"\n", 0, cut)

    def _cut(self, buf: bytearray, end: int) -> int:
        cut = buf.rfind(b"\n", 0, end) + 1
        if cut == 0:
            cut = buf.rfind(b"\r", 0, end) + 1
        if not self.quote_aware or cut == 0:
            return cut
        odd = buf.count(b'"', 0, cut) & 1
        while odd and cut:
            prev = buf.rfind(b"\n", 0, cut - 1) + 1
            odd ^= buf.count(b'"', prev, cut) & 1
            cut = prev
        return cut


def _free_buffer(spare: list[bytearray], size: int) -> bytearray:
    """A buffer of at least ``size`` bytes, reusing one no block refers to any more.

    Fresh block-sized buffers cost a page fault per 4 KiB on first touch (about a
    tenth of the CPU time of parsing); a parsed table never points into its
    block, so once every view of a buffer is gone it can be filled again.
    Whether views remain is read from the reference count, so a caller that
    keeps a block (or Arrow, if it ever kept a slice) simply gets a new buffer.
    """
    for buf in spare:
        # references: the list, the loop variable and getrefcount's argument
        if sys.getrefcount(buf) <= 3 and len(buf) >= size:
            return buf
    buf = bytearray(size + (size >> 4))  # room for the next block's carried partial record
    if len(spare) < SPARE_BUFFERS:
        spare.append(buf)
    return buf


Parsed = tuple[pa.Table | None, Exception | None]


class BlockFormat(ABC):
    """A text format parsed block by block; subclasses parse, infer and diagnose.

    ``names`` and the first block's ``inferred`` types are known after
    construction. :meth:`read` yields one typed table per block.
    """

    names: list[str]
    inferred: dict[str, pa.DataType]
    strict_columns = False
    """Set for an append: a column the types do not name is an error, not a new column."""

    @abstractmethod
    def _blocks(self) -> Generator[Block, None, None]: ...

    @abstractmethod
    def _parse(self, block: Block, types: Mapping[str, pa.DataType]) -> pa.Table: ...

    @abstractmethod
    def _infer(self, block: Block) -> dict[str, pa.DataType]: ...

    @abstractmethod
    def _conflict(
        self, block: Block, exc: Exception, types: Mapping[str, pa.DataType]
    ) -> tuple[str, object] | None:
        """(column, bad value) if ``exc`` says a value did not fit its column's type."""

    @abstractmethod
    def _diagnose(self, block: Block, exc: Exception, rows_before: int) -> Exception:
        """The precise error for a block that failed for another reason."""

    @abstractmethod
    def _locate(self, block: Block, column: str, value: object) -> int | None:
        """0-based row in ``block`` holding ``value`` in ``column``."""

    def _check(self, block: Block, table: pa.Table, rows_before: int) -> None:  # noqa: B027
        """Raise if a parsed block shows the parse itself was wrong."""

    def _try_parse(self, block: Block, types: Mapping[str, pa.DataType]) -> Parsed:
        try:
            return self._parse(block, types), None
        except (pa.ArrowInvalid, UnicodeDecodeError, CoercionError) as e:
            return None, e

    def read(
        self,
        types: Mapping[str, pa.DataType],
        fixed: Mapping[str, ColumnKind | None],
    ) -> Iterator[pa.Table]:
        """Typed tables, one per block, in file order.

        ``fixed`` columns never widen, except within their kind when one is given
        (an override ``numeric`` column may go from int64 to double); a value
        that does not fit raises :class:`CoercionError`.
        """
        types = dict(types)
        yielded = discovering = False
        rows_before = 0
        pool = ThreadPoolExecutor(LOOKAHEAD, thread_name_prefix="openmaas-parse")
        pending: deque[tuple[Block, dict[str, pa.DataType], Future[Parsed]]] = deque()
        blocks = iter(self._blocks())
        too_long: RecordTooLong | None = None

        def submit() -> None:
            nonlocal too_long
            if too_long is not None:
                return
            try:
                block = next(blocks, None)
            except RecordTooLong as e:
                too_long = e
                return
            if block is not None:
                snapshot = dict(types)
                pending.append((block, snapshot, pool.submit(self._try_parse, block, snapshot)))

        try:
            for _ in range(LOOKAHEAD):
                submit()
            while pending:
                block, used, fut = pending.popleft()
                table, exc = fut.result()
                if exc is None and used != types:  # submitted before a type was widened
                    table, exc = self._try_parse(block, types)
                if exc is not None:
                    table, new = self._resolve(block, exc, types, fixed, rows_before)
                    if new != types:
                        types = new
                        discovering = discovering or yielded
                submit()
                assert table is not None
                self._check(block, table, rows_before)
                if not discovering:
                    yield table
                    yielded = True
                rows_before += table.num_rows
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            close = getattr(blocks, "close", None)
            if close is not None:
                close()
        if too_long is not None:
            raise InvalidFile(
                f"row {rows_before + 1} is longer than {too_long.limit:,} bytes: "
                "a field over the size limit, or a quote that is never closed",
                details={"row": rows_before + 1, "limit": too_long.limit},
            )
        if discovering:
            raise Restart(types=types)

    def _resolve(
        self,
        block: Block,
        exc: Exception,
        types: dict[str, pa.DataType],
        fixed: Mapping[str, ColumnKind | None],
        rows_before: int,
    ) -> tuple[pa.Table, dict[str, pa.DataType]]:
        """Widen types until ``block`` parses, or raise the precise error."""
        inferred: dict[str, pa.DataType] | None = None
        last: str | None = None
        for _ in range(2 * len(types) + 2):
            if isinstance(exc, CoercionError):
                exc.row = None if exc.row is None else rows_before + exc.row
                raise exc
            conflict = self._conflict(block, exc, types)
            if conflict is None:
                raise self._diagnose(block, exc, rows_before) from None
            column, value = conflict
            if inferred is None:
                inferred = self._infer(block)
            new = dict(types)
            for name, t in inferred.items():
                if name not in types:
                    new[name] = t  # a column first seen in this block (JSON Lines)
                elif name not in fixed or name == column:
                    new[name] = join_types(types[name], t)
            if column in types and new[column] == types[column] and column == last:
                new[column] = pa.string()  # retried once unchanged: text holds anything
            last = column
            if column in fixed:
                allowed = fixed[column]
                if allowed is None or kind_of_type(new[column]) != allowed:
                    row = self._locate(block, column, value)
                    raise CoercionError(
                        column, None if row is None else rows_before + row + 1, value, types[column]
                    )
            types = new
            table, exc2 = self._try_parse(block, types)
            if exc2 is None:
                assert table is not None
                return table, types
            exc = exc2
        raise self._diagnose(block, exc, rows_before)
