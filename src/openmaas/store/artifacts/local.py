"""Blobs as files in a local folder (or a shared network mount).

A put writes into ``root/tmp``, fsyncs, then ``os.replace``-s the file to
``root/blobs/ab/cd/<digest>``. The temporary folder lives inside the root so
the rename never crosses a filesystem and is atomic: readers see the whole
blob or none. The rename always happens, also when the blob exists, which
replaces it with identical bytes and refreshes its mtime (see the contract).
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from openmaas.errors import NotFound, StoreError
from openmaas.store.artifacts.base import (
    TEMP_MAX_AGE,
    ArtifactStore,
    BlobInfo,
    Hasher,
    Source,
    blob_key,
    check_age,
    is_digest,
    iter_source,
    validate_digest,
)

_O_BINARY = getattr(os, "O_BINARY", 0)


@contextlib.contextmanager
def _os_errors(action: str, *, missing: str | None = None) -> Iterator[None]:
    """Turn ``OSError`` into ``StoreError`` (or ``NotFound`` for a missing blob)."""
    try:
        yield
    except FileNotFoundError as e:
        if missing is None:
            raise StoreError(f"local artifact store: could not {action}: {e}") from e
        raise NotFound(f"blob {missing} not found", details={"digest": missing}) from e
    except OSError as e:
        raise StoreError(f"local artifact store: could not {action}: {e}") from e


def _fsync_dir(path: Path) -> None:
    """Persist a rename: on POSIX the directory entry needs its own fsync.

    Best effort: some network filesystems refuse to fsync a directory, and the
    blob is complete and visible either way.
    """
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class LocalArtifactStore(ArtifactStore):
    """Blobs under ``root/blobs``; puts in progress under ``root/tmp``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().absolute()
        self._tmp = self.root / "tmp"
        with _os_errors(f"create the store folders in {self.root}"):
            (self.root / "blobs").mkdir(parents=True, exist_ok=True)
            self._tmp.mkdir(exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalArtifactStore({str(self.root)!r})"

    def _path(self, digest: str) -> Path:
        return self.root / blob_key(digest)

    # Writing ---------------------------------------------------------------------
    def put_stream(self, chunks: Source) -> BlobInfo:
        tmp = self._tmp / f"{uuid.uuid4().hex}.part"
        with _os_errors("create a temporary file"):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o644)
        hasher = Hasher()
        try:
            with os.fdopen(fd, "wb") as f:
                # Errors of the source propagate as they are; only ours are wrapped.
                for chunk in iter_source(chunks):
                    hasher.update(chunk)
                    with _os_errors("write a temporary file"):
                        f.write(chunk)
                with _os_errors("flush a temporary file"):
                    f.flush()
                    os.fsync(f.fileno())
            info = hasher.info()
            final = self._path(info.digest)
            with _os_errors(f"store blob {info.digest}"):
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
                _fsync_dir(final.parent)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise
        return info

    def adopt(self, path: Path, digest: str | None = None) -> BlobInfo:
        """Move the file into place when its digest is known (no copy, no re-read)."""
        if digest is None:
            return super().adopt(path, digest)
        validate_digest(digest)
        path = Path(path)
        final = self._path(digest)
        try:
            with path.open("rb") as f:
                os.fsync(f.fileno())
            size = path.stat().st_size
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                path.unlink()
                os.utime(final)  # a re-put refreshes the age garbage collection sees
            else:
                os.replace(path, final)
            _fsync_dir(final.parent)
        except OSError as e:
            if e.errno == errno.EXDEV:  # another file system: copy instead
                return super().adopt(path, None)
            raise StoreError(f"could not store blob {digest}: {e}") from e
        return BlobInfo(digest=digest, size=size)

    # Reading ---------------------------------------------------------------------
    def open(self, digest: str) -> BinaryIO:
        path = self._path(digest)
        with _os_errors(f"open blob {digest}", missing=digest):
            return path.open("rb")

    def exists(self, digest: str) -> bool:
        return self._path(digest).is_file()

    def size(self, digest: str) -> int:
        path = self._path(digest)
        with _os_errors(f"stat blob {digest}", missing=digest):
            return path.stat().st_size

    def local_path(self, digest: str) -> Path | None:
        path = self._path(digest)
        if not path.is_file():
            raise NotFound(f"blob {digest} not found", details={"digest": digest})
        return path

    # Maintenance -----------------------------------------------------------------
    def delete(self, digest: str) -> None:
        path = self._path(digest)
        with _os_errors(f"delete blob {digest}"):
            path.unlink(missing_ok=True)

    def iter_blobs(self) -> Iterator[tuple[str, datetime]]:
        blobs = self.root / "blobs"
        for level1 in self._subdirs(blobs):
            for level2 in self._subdirs(blobs / level1):
                with _os_errors("list blobs"):
                    entries = list(os.scandir(blobs / level1 / level2))
                for entry in entries:
                    name = entry.name
                    if not (is_digest(name) and name[:2] == level1 and name[2:4] == level2):
                        continue  # not ours: never report what delete() could not address
                    try:
                        mtime = entry.stat().st_mtime
                    except FileNotFoundError:
                        continue  # deleted while we were listing
                    yield name, datetime.fromtimestamp(mtime, UTC)

    @staticmethod
    def _subdirs(path: Path) -> list[str]:
        with _os_errors("list blobs"):
            return sorted(e.name for e in os.scandir(path) if len(e.name) == 2 and e.is_dir())

    def cleanup_temp(self, older_than: timedelta = TEMP_MAX_AGE) -> int:
        cutoff = time.time() - check_age(older_than).total_seconds()
        removed = 0
        with _os_errors("list temporary files"):
            entries = list(os.scandir(self._tmp))
        for entry in entries:
            try:
                if entry.is_file() and entry.stat().st_mtime <= cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue  # a put finished or another cleanup won the race
            except OSError as e:
                raise StoreError(f"local artifact store: could not remove {entry.path}: {e}") from e
        return removed
