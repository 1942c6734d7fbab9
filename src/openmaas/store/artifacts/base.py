"""The artifact store interface: immutable blobs addressed by their sha256.

Datasets, model files and reports are stored once, under the hex digest of
their bytes; the metadata database records which digests it references. Being
content-addressed makes puts idempotent and lets two uploads of the same file
share storage, and it means a blob never changes once written.
"""

from __future__ import annotations

import abc
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from openmaas.errors import InvalidInput

#: Chunk size used to stream sources and blobs.
CHUNK_SIZE = 1 << 20

#: How old a temporary leftover must be before ``cleanup_temp`` removes it.
TEMP_MAX_AGE = timedelta(hours=1)

_DIGEST_RE = re.compile(r"[0-9a-f]{64}")

#: What a put source may yield: any contiguous bytes-like chunk.
BytesLike = bytes | bytearray | memoryview

#: A put source: an iterable of chunks, or a binary file object read in chunks.
Source = Iterable[BytesLike] | BinaryIO


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What a put stored: the blob's sha256 hex digest and its size in bytes."""

    digest: str
    size: int


def validate_digest(digest: object) -> str:
    """Return ``digest`` if it is 64 lowercase hex characters, else raise ``InvalidInput``.

    Every path or key a backend builds comes from a digest that passed here, so
    a caller-supplied string such as ``../etc/passwd`` can never address a file.
    """
    if not isinstance(digest, str) or _DIGEST_RE.fullmatch(digest) is None:
        raise InvalidInput(
            f"invalid digest {digest!r}: expected 64 lowercase hex characters (sha256)",
            details={"digest": str(digest)[:100]},
        )
    return digest


def is_digest(value: str) -> bool:
    """Whether ``value`` is a well-formed digest (for filtering listings)."""
    return _DIGEST_RE.fullmatch(value) is not None


def check_age(older_than: timedelta, name: str = "older_than") -> timedelta:
    """Reject negative ages, which would reach into the future and remove live data."""
    if older_than < timedelta(0):
        raise InvalidInput(
            f"{name} must not be negative, got {older_than}", details={name: str(older_than)}
        )
    return older_than


def blob_key(digest: str) -> str:
    """The blob's location below the store root: ``blobs/ab/cd/abcd...``.

    Sharding by prefix keeps directories small on local disk and spreads keys
    across S3 partitions.
    """
    digest = validate_digest(digest)
    return f"blobs/{digest[:2]}/{digest[2:4]}/{digest}"


def iter_source(source: Source, chunk_size: int = CHUNK_SIZE) -> Iterator[BytesLike]:
    """Chunks of a put source: a binary file object is read ``chunk_size`` at a time."""
    if isinstance(source, bytes | bytearray | memoryview | str):
        # Iterating bytes yields ints; fail clearly instead of deep inside hashlib.
        raise TypeError("put_stream takes an iterable of bytes or a binary file; wrap data: [data]")
    read = getattr(source, "read", None)
    if read is not None:
        while chunk := read(chunk_size):
            yield chunk
    else:
        for chunk in source:
            if chunk:
                yield chunk


class Hasher:
    """Running sha256 and byte count of what a put has written so far."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.size = 0

    def update(self, chunk: BytesLike) -> None:
        self._sha.update(chunk)
        self.size += chunk.nbytes if isinstance(chunk, memoryview) else len(chunk)

    def info(self) -> BlobInfo:
        return BlobInfo(digest=self._sha.hexdigest(), size=self.size)


class ArtifactStore(abc.ABC):
    """Content-addressed blob storage; every backend keeps these promises.

    * **Addressing.** A blob is named by the sha256 hex digest of its bytes.
      Every method taking a digest raises ``InvalidInput`` unless it is exactly
      64 lowercase hex characters; backends build paths and keys only from
      validated digests (``blob_key``), laid out as ``blobs/ab/cd/<digest>``.
    * **Immutability and idempotence.** Putting content that is already stored
      returns the same ``BlobInfo`` and leaves one blob. It does refresh the
      blob's last-modified time, so a re-put blob the caller is about to record
      is protected by the garbage collector's grace period like a new one.
    * **Atomicity.** A blob becomes visible under its final name only once it
      is complete: a put that fails or crashes at any point leaves nothing that
      ``exists``, ``open`` or ``iter_blobs`` can see. An exception raised by the
      source propagates unchanged, and the put removes its own temporary data;
      what a hard crash leaves behind is removed by ``cleanup_temp``.
    * **Bounded memory.** Puts and reads stream in chunks; no method holds a
      whole blob in memory.
    * **Errors.** A missing blob raises ``NotFound``; a backend failure raises
      ``StoreError`` from the driver's exception.
    * **Time.** ``iter_blobs`` reports timezone-aware UTC datetimes. Remote
      backends report the server's clock, which may be skewed by seconds.
    * **Concurrency.** Instances may be shared between threads, and several
      processes may use the same root at once.
    """

    # Writing ---------------------------------------------------------------------
    @abc.abstractmethod
    def put_stream(self, chunks: Source) -> BlobInfo:
        """Store the bytes of ``chunks``: an iterable of bytes-like chunks or a binary file."""

    def put_file(self, path: Path) -> BlobInfo:
        """Store the content of the local file at ``path``, streamed in chunks."""
        with Path(path).open("rb") as f:
            return self.put_stream(f)

    def adopt(self, path: Path, digest: str | None = None) -> BlobInfo:
        """Store a local file the caller owns and no longer needs; ``path`` is consumed.

        ``digest``, when given, is the SHA-256 the caller computed while writing the
        file and is trusted: a backend may then move the file into place instead of
        reading it again. Without it this is ``put_file`` followed by deleting ``path``.
        """
        info = self.put_file(path)
        Path(path).unlink(missing_ok=True)
        return info

    # Reading ---------------------------------------------------------------------
    @abc.abstractmethod
    def open(self, digest: str) -> BinaryIO:
        """A readable, seekable binary file object over the blob; the caller closes it.

        Raises ``NotFound`` if the blob is absent.
        """

    def iter_chunks(self, digest: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The blob's bytes in chunks of at most ``chunk_size``.

        The digest and chunk size are checked at call time; ``NotFound`` surfaces
        on the first iteration, when the blob is opened.
        """
        validate_digest(digest)
        if chunk_size <= 0:
            raise InvalidInput(f"chunk_size must be positive, got {chunk_size}")
        return self._iter_chunks(digest, chunk_size)

    def _iter_chunks(self, digest: str, chunk_size: int) -> Iterator[bytes]:
        with self.open(digest) as f:
            while chunk := f.read(chunk_size):
                yield chunk

    @abc.abstractmethod
    def exists(self, digest: str) -> bool:
        """Whether the blob is stored."""

    @abc.abstractmethod
    def size(self, digest: str) -> int:
        """The blob's size in bytes; ``NotFound`` if absent."""

    def local_path(self, digest: str) -> Path | None:
        """A local file holding the blob, for ``mmap`` and zero-copy readers.

        ``None`` when the backend has no local files. Raises ``NotFound`` if the
        blob is absent from a backend that has them. Never write to the path.
        """
        validate_digest(digest)
        return None

    # Maintenance -----------------------------------------------------------------
    @abc.abstractmethod
    def delete(self, digest: str) -> None:
        """Remove the blob; deleting an absent blob is not an error."""

    @abc.abstractmethod
    def iter_blobs(self) -> Iterator[tuple[str, datetime]]:
        """Every stored blob as ``(digest, last_modified_utc)``, in no particular order."""

    @abc.abstractmethod
    def cleanup_temp(self, older_than: timedelta = TEMP_MAX_AGE) -> int:
        """Remove temporary leftovers of crashed puts older than ``older_than``.

        Returns how many were removed. Puts still running are younger than the
        default hour, so calling this with the default is always safe.
        """
