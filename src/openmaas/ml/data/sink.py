"""Writing the output Parquet file atomically, on a background thread.

Tables are encoded on one writer thread while the caller parses and profiles
the next block, so encoding overlaps the rest of the pipeline; hashing and
syncing the bytes written run on a second helper thread. The file is
written under a temporary name beside ``out`` and renamed only on success; on
any error it is deleted, so ``out`` never holds half a dataset.

Encoding: snappy; dictionary pages only for string columns whose first batch
repeats values (dictionary-building a unique column costs time and is then
abandoned);
min/max statistics for all but string columns (comparing strings costs ~6 % of
the write and text statistics rarely prune anything); row groups of 64k to 1M
rows (small batches are coalesced).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

COMPRESSION = "snappy"
MIN_ROW_GROUP_ROWS = 1 << 16
MAX_ROW_GROUP_ROWS = 1 << 20
MAX_BUFFER_BYTES = 128 << 20
MAX_PENDING = 2
WRITE_BUFFER_BYTES = 8 << 20
SYNC_BYTES = 64 << 20
_datasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


class ParquetSink:
    """Streams tables of one schema into ``out``; use as a context manager."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
        self._writer: pq.ParquetWriter | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="openmaas-parquet")
        self._pending: deque[Future[None]] = deque()
        self._buffer: list[pa.Table] = []
        self._buffered_rows = 0
        self._buffered_bytes = 0
        self._committed = False
        self._file: _HashingFile | None = None
        self._stream: pa.NativeFile | None = None
        self.sha256: str | None = None  # of the file, once committed

    def __enter__(self) -> ParquetSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._committed:
            self.abort()

    def write(self, table: pa.Table) -> None:
        self._buffer.append(table)
        self._buffered_rows += table.num_rows
        self._buffered_bytes += table.nbytes
        if self._buffered_rows >= MIN_ROW_GROUP_ROWS or self._buffered_bytes >= MAX_BUFFER_BYTES:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        table = self._buffer[0] if len(self._buffer) == 1 else pa.concat_tables(self._buffer)
        self._buffer, self._buffered_rows, self._buffered_bytes = [], 0, 0
        if self._writer is None:
            self._file = _HashingFile(self.tmp)
            # Buffered in Arrow: the writer thread calls into Python (and takes the GIL)
            # once per 8 MiB instead of once per page and page header.
            self._stream = pa.BufferedOutputStream(
                pa.PythonFile(self._file, mode="w"), buffer_size=WRITE_BUFFER_BYTES
            )
            self._writer = pq.ParquetWriter(
                self._stream,
                table.schema,
                compression=COMPRESSION,
                use_dictionary=_dictionary_columns(table),
                write_statistics=[f.name for f in table.schema if not pa.types.is_string(f.type)],
            )
        self._pending.append(
            self._pool.submit(self._writer.write_table, table, row_group_size=MAX_ROW_GROUP_ROWS)
        )
        while len(self._pending) > MAX_PENDING:
            self._pending.popleft().result()

    def commit(self) -> int:
        """Finish the file, move it to ``out`` and return its size in bytes."""
        self._flush()
        while self._pending:
            self._pending.popleft().result()
        self._pool.shutdown()
        if self._writer is None:
            raise RuntimeError("commit() of an empty ParquetSink")
        self._writer.close()
        self._writer = None
        assert self._file is not None and self._stream is not None
        self._stream.close()
        self._file.close()
        self.sha256 = self._file.hexdigest()
        os.replace(self.tmp, self.out)
        self._committed = True
        return self.out.stat().st_size

    def abort(self) -> None:
        """Stop writing and delete the temporary file."""
        for fut in self._pending:
            fut.cancel()
        self._pool.shutdown(wait=True)
        self._pending.clear()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.close()
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
        self.tmp.unlink(missing_ok=True)


class _HashingFile(io.RawIOBase):
    """A write-only file that hashes what passes through and makes it durable as it goes.

    The digest costs no re-read of the file. Hashing and an ``fdatasync`` every
    ``SYNC_BYTES`` run in order on a helper thread, so the encoder thread only
    writes, and the final fsync when the blob is stored finds little left to
    flush instead of the whole file (a serial wait at the end of every upload).
    """

    def __init__(self, path: Path) -> None:
        self._f = open(path, "wb")  # noqa: SIM115
        self._hash = hashlib.sha256()
        self._pos = 0
        self._synced = 0
        self._helper = ThreadPoolExecutor(1, thread_name_prefix="openmaas-parquet-hash")
        self._pending: deque[Future[None]] = deque()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = bytes(data)  # Arrow reuses its buffer once this returns
        n = self._f.write(chunk)
        self._pos += n
        sync = self._pos - self._synced >= SYNC_BYTES
        if sync:
            self._f.flush()
            self._synced = self._pos
        self._pending.append(self._helper.submit(self._digest, chunk, sync))
        while len(self._pending) > MAX_PENDING:
            self._pending.popleft().result()
        return n

    def _digest(self, chunk: bytes, sync: bool) -> None:
        self._hash.update(chunk)
        if sync:
            _datasync(self._f.fileno())

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        if not self._f.closed:
            self._f.flush()

    def close(self) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._helper.shutdown(wait=True, cancel_futures=True)
            if not self._f.closed:
                self._f.close()
            super().close()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _dictionary_columns(table: pa.Table) -> list[str]:
    """Columns worth dictionary-encoding: strings that repeat (numbers compress anyway)."""
    out = []
    n = max(1, table.num_rows)
    for name, col in zip(table.column_names, table.columns, strict=True):
        if not pa.types.is_string(col.type):
            continue
        if pc.count_distinct(col).as_py() * 4 <= n:
            out.append(name)
    return out
