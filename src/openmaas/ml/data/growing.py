"""A file that is still being written, readable while it grows.

An upload is received into a temporary file; parsing it only after the last
byte arrived would add the whole transfer time to the ingest. ``GrowingFile``
lets the ingest read the upload while it is received: a reader blocks at the
current end until more bytes arrive, sees end-of-file only when the writer
calls ``finish()``, and gets the writer's error if the upload failed (too
large, truncated), so a bad upload never ingests as a short file.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import BinaryIO


class UploadFailed(Exception):
    """Raised to readers when the writer gave up; carries the writer's error."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class GrowingFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._size = 0
        self._done = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()

    # Writer side ------------------------------------------------------------------
    def grew(self, n: int) -> None:
        """``n`` more bytes are on disk (written unbuffered) and may be read."""
        with self._cond:
            self._size += n
            self._cond.notify_all()

    def finish(self, error: BaseException | None = None) -> None:
        with self._cond:
            self._done = True
            self._error = error
            self._cond.notify_all()

    # Reader side ------------------------------------------------------------------
    @property
    def size(self) -> int:
        return self._size

    def wait_available(self, pos: int) -> int:
        """Bytes readable from ``pos`` (0 only at the real end); raises if the upload failed."""
        with self._cond:
            while self._size <= pos and not self._done:
                self._cond.wait()
            if self._error is not None:
                raise UploadFailed(self._error)
            return self._size - pos

    def complete(self) -> Path:
        """Wait for the whole upload (formats that need random access, like Parquet)."""
        self.wait_available(1 << 62)
        return self.path

    def stat(self) -> os.stat_result:
        return self.complete().stat()

    def open(self) -> BinaryIO:
        return io.BufferedReader(_Reader(self), buffer_size=1 << 20)  # type: ignore[return-value]


class _Reader(io.RawIOBase):
    def __init__(self, growing: GrowingFile) -> None:
        self._g = growing
        self._f = open(growing.path, "rb", buffering=0)  # noqa: SIM115
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            self._g.complete()
            offset += self._g.size
        elif whence == io.SEEK_CUR:
            offset += self._pos
        self._pos = offset
        self._f.seek(offset)
        return offset

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        available = self._g.wait_available(self._pos)
        if available <= 0:
            return 0
        view = memoryview(buffer)[: min(len(buffer), available)]
        n = self._f.readinto(view) or 0
        self._pos += n
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


Src = Path | GrowingFile


def open_binary(src: Src) -> BinaryIO:
    """Open a plain path or a growing upload for reading from its start."""
    if isinstance(src, GrowingFile):
        return src.open()
    return open(src, "rb")


def as_path(src: Src) -> Path:
    """A complete file on disk (waits for a growing upload to finish)."""
    return src.complete() if isinstance(src, GrowingFile) else src
