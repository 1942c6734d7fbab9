"""The ``ArtifactStore`` contract as a test class every backend must pass.

Subclass it in a test module and provide an ``artifact_store`` fixture that
yields an empty store (parametrise the fixture to cover several backends)::

    class TestArtifactStore(ArtifactStoreSuite):
        pass

Each test states one promise from ``ArtifactStore``'s docstring, so a backend
that drifts fails here rather than in production.
"""

from __future__ import annotations

import hashlib
import io
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from openmaas.errors import InvalidInput, NotFound
from openmaas.store.artifacts.base import ArtifactStore, BlobInfo
from openmaas.store.artifacts.gc import collect_garbage

MiB = 1 << 20
#: Larger than S3's 5 MiB minimum part, so remote backends go multipart.
LARGE = 9 * MiB + 7

BAD_DIGESTS = [
    "../etc/passwd",
    "ABC",
    "",
    "a" * 63,
    "a" * 65,
    "A" * 64,
    "g" * 64,
    "a" * 64 + "\n",
    "../" + "a" * 61,
    "ab/cd/" + "a" * 58,
]

DigestCall = Callable[[ArtifactStore, str], Any]
DIGEST_METHODS: dict[str, DigestCall] = {
    "open": lambda s, d: s.open(d),
    "exists": lambda s, d: s.exists(d),
    "size": lambda s, d: s.size(d),
    "delete": lambda s, d: s.delete(d),
    "local_path": lambda s, d: s.local_path(d),
    "iter_chunks": lambda s, d: s.iter_chunks(d),
}
READ_METHODS: dict[str, DigestCall] = {
    "open": lambda s, d: s.open(d),
    "size": lambda s, d: s.size(d),
    "iter_chunks": lambda s, d: list(s.iter_chunks(d)),
}


def content(size: int, seed: int = 0) -> bytes:
    """Deterministic incompressible bytes."""
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_blob(store: ArtifactStore, digest: str) -> bytes:
    with store.open(digest) as f:
        return f.read()


def irregular_chunks(data: bytes, seed: int = 0) -> Iterator[bytes]:
    """``data`` cut at random points, with empty chunks mixed in."""
    rng = random.Random(seed)
    pos = 0
    while pos < len(data):
        step = rng.choice([0, 1, 7, 4096, 65_537, MiB + 3])
        yield data[pos : pos + step]
        pos += step


class _CrashMidUpload(Exception):
    pass


class _FailingReader(io.RawIOBase):
    """A binary source that fails after yielding some data, as a dropped upload does."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._done:
            raise OSError("source connection lost")
        self._done = True
        n = min(len(buffer), len(self._data))
        buffer[:n] = self._data[:n]
        return n


class ArtifactStoreSuite:
    """Tests every ``ArtifactStore`` must pass; needs an ``artifact_store`` fixture."""

    # Puts ------------------------------------------------------------------------
    @pytest.mark.parametrize("size", [0, 1, 1000, LARGE], ids=["empty", "1B", "1kB", "9MiB"])
    def test_put_file_round_trip(
        self, artifact_store: ArtifactStore, tmp_path: Path, size: int
    ) -> None:
        data = content(size)
        src = tmp_path / "source.bin"
        src.write_bytes(data)
        info = artifact_store.put_file(src)
        assert info == BlobInfo(digest=sha256(data), size=size)
        assert read_blob(artifact_store, info.digest) == data
        assert src.read_bytes() == data

    @pytest.mark.parametrize("known", [True, False], ids=["digest-known", "digest-unknown"])
    def test_adopt_consumes_the_file(
        self, artifact_store: ArtifactStore, tmp_path: Path, known: bool
    ) -> None:
        data = content(1000, seed=3)
        for attempt in range(2):  # the second adopt of the same content is idempotent
            src = tmp_path / f"owned-{attempt}.bin"
            src.write_bytes(data)
            info = artifact_store.adopt(src, sha256(data) if known else None)
            assert info == BlobInfo(digest=sha256(data), size=len(data))
            assert not src.exists()
            assert read_blob(artifact_store, info.digest) == data

    @pytest.mark.parametrize("size", [1000, LARGE], ids=["1kB", "9MiB"])
    @pytest.mark.parametrize("kind", ["chunks", "file"])
    def test_put_stream_round_trip(
        self, artifact_store: ArtifactStore, kind: str, size: int
    ) -> None:
        data = content(size, seed=1)
        source = irregular_chunks(data) if kind == "chunks" else io.BytesIO(data)
        info = artifact_store.put_stream(source)
        assert info == BlobInfo(digest=sha256(data), size=size)
        assert artifact_store.size(info.digest) == size
        assert read_blob(artifact_store, info.digest) == data

    def test_put_stream_accepts_bytes_like_chunks(self, artifact_store: ArtifactStore) -> None:
        info = artifact_store.put_stream([b"ab", bytearray(b"cd"), memoryview(b"ef")])
        assert info == BlobInfo(digest=sha256(b"abcdef"), size=6)

    def test_put_stream_rejects_bare_bytes(self, artifact_store: ArtifactStore) -> None:
        with pytest.raises(TypeError, match=r"iterable of bytes or a binary file"):
            artifact_store.put_stream(b"abc")  # type: ignore[arg-type]
        assert list(artifact_store.iter_blobs()) == []

    def test_put_is_idempotent(self, artifact_store: ArtifactStore, tmp_path: Path) -> None:
        data = content(5000, seed=2)
        first = artifact_store.put_stream([data])
        src = tmp_path / "again.bin"
        src.write_bytes(data)
        assert artifact_store.put_file(src) == first
        assert artifact_store.put_stream(io.BytesIO(data)) == first
        assert [d for d, _ in artifact_store.iter_blobs()] == [first.digest]
        assert read_blob(artifact_store, first.digest) == data

    def test_put_refreshes_last_modified(self, artifact_store: ArtifactStore) -> None:
        digest = artifact_store.put_stream([b"re-put me"]).digest
        (before,) = (t for d, t in artifact_store.iter_blobs() if d == digest)
        time.sleep(1.1)  # S3 reports LastModified to the second
        artifact_store.put_stream([b"re-put me"])
        (after,) = (t for d, t in artifact_store.iter_blobs() if d == digest)
        assert after > before

    def test_concurrent_puts_of_same_content(self, artifact_store: ArtifactStore) -> None:
        data = content(MiB, seed=3)
        with ThreadPoolExecutor(max_workers=4) as pool:
            infos = list(pool.map(lambda _: artifact_store.put_stream([data]), range(8)))
        assert set(infos) == {BlobInfo(sha256(data), MiB)}
        assert [d for d, _ in artifact_store.iter_blobs()] == [sha256(data)]
        assert read_blob(artifact_store, sha256(data)) == data

    # Atomicity -------------------------------------------------------------------
    @pytest.mark.parametrize("size", [1000, LARGE], ids=["1kB", "9MiB"])
    @pytest.mark.parametrize("error", [_CrashMidUpload, KeyboardInterrupt])
    def test_failed_put_leaves_nothing(
        self, artifact_store: ArtifactStore, error: type[BaseException], size: int
    ) -> None:
        data = content(size, seed=4)

        def crashing() -> Iterator[bytes]:
            yield data
            raise error("crash mid-upload")

        with pytest.raises(error, match="crash mid-upload"):
            artifact_store.put_stream(crashing())
        self._assert_nothing_left(artifact_store, data)

    def test_source_errors_propagate_unchanged(self, artifact_store: ArtifactStore) -> None:
        data = content(1000, seed=5)
        # An OSError of the *source* is the caller's, not a StoreError of ours.
        with pytest.raises(OSError, match="source connection lost"):
            artifact_store.put_stream(io.BufferedReader(_FailingReader(data)))
        self._assert_nothing_left(artifact_store, data)

    @staticmethod
    def _assert_nothing_left(store: ArtifactStore, data: bytes) -> None:
        assert list(store.iter_blobs()) == []
        assert not store.exists(sha256(data))
        assert store.cleanup_temp(older_than=timedelta(0)) == 0, "put left temporary data"

    def test_cleanup_temp_keeps_blobs(self, artifact_store: ArtifactStore) -> None:
        digest = artifact_store.put_stream([b"keep me"]).digest
        assert artifact_store.cleanup_temp() == 0
        assert artifact_store.cleanup_temp(older_than=timedelta(0)) == 0
        assert read_blob(artifact_store, digest) == b"keep me"

    def test_cleanup_temp_rejects_negative_age(self, artifact_store: ArtifactStore) -> None:
        with pytest.raises(InvalidInput, match=r"older_than must not be negative"):
            artifact_store.cleanup_temp(older_than=timedelta(seconds=-1))

    # Reads -----------------------------------------------------------------------
    def test_open_is_seekable(self, artifact_store: ArtifactStore) -> None:
        data = bytes(range(256)) * 40
        digest = artifact_store.put_stream([data]).digest
        with artifact_store.open(digest) as f:
            assert f.readable()
            assert f.seekable()
            f.seek(100)
            assert f.read(10) == data[100:110]
            assert f.tell() == 110
            assert f.seek(0, io.SEEK_END) == len(data)
            f.seek(-5, io.SEEK_END)
            assert f.read() == data[-5:]
            f.seek(0)
            assert f.read() == data

    def test_open_is_readable_by_parquet(self, artifact_store: ArtifactStore) -> None:
        table = pa.table({"x": list(range(5000)), "s": [f"row {i}" for i in range(5000)]})
        buf = io.BytesIO()
        pq.write_table(table, buf, row_group_size=1000)
        buf.seek(0)
        digest = artifact_store.put_stream(buf).digest
        with artifact_store.open(digest) as f:
            assert pq.read_table(f).equals(table)
        with artifact_store.open(digest) as f:
            parquet = pq.ParquetFile(f)
            assert parquet.metadata.num_row_groups == 5
            assert parquet.read_row_group(3).column("x").to_pylist() == list(range(3000, 4000))

    def test_iter_chunks(self, artifact_store: ArtifactStore) -> None:
        data = content(2500, seed=6)
        digest = artifact_store.put_stream([data]).digest
        chunks = list(artifact_store.iter_chunks(digest, chunk_size=1000))
        assert [len(c) for c in chunks] == [1000, 1000, 500]
        assert b"".join(chunks) == data
        assert b"".join(artifact_store.iter_chunks(digest)) == data

    def test_iter_chunks_rejects_bad_chunk_size(self, artifact_store: ArtifactStore) -> None:
        digest = artifact_store.put_stream([b"x"]).digest
        with pytest.raises(InvalidInput, match=r"chunk_size must be positive, got 0"):
            artifact_store.iter_chunks(digest, chunk_size=0)

    def test_exists_size_delete(self, artifact_store: ArtifactStore) -> None:
        digest = artifact_store.put_stream([b"0123456789"]).digest
        assert artifact_store.exists(digest)
        assert artifact_store.size(digest) == 10
        artifact_store.delete(digest)
        assert not artifact_store.exists(digest)
        artifact_store.delete(digest)  # idempotent
        assert list(artifact_store.iter_blobs()) == []

    @pytest.mark.parametrize("method", sorted(READ_METHODS))
    def test_missing_blob_raises_not_found(
        self, artifact_store: ArtifactStore, method: str
    ) -> None:
        missing = sha256(b"never stored")
        with pytest.raises(NotFound, match=rf"^blob {missing} not found$"):
            READ_METHODS[method](artifact_store, missing)

    def test_missing_blob_has_no_local_path(self, artifact_store: ArtifactStore) -> None:
        missing = sha256(b"never stored")
        try:
            path = artifact_store.local_path(missing)
        except NotFound:
            return
        assert path is None

    @pytest.mark.parametrize("bad", BAD_DIGESTS)
    @pytest.mark.parametrize("method", sorted(DIGEST_METHODS))
    def test_bad_digest_is_rejected(
        self, artifact_store: ArtifactStore, method: str, bad: str
    ) -> None:
        with pytest.raises(InvalidInput, match=r"^invalid digest .*: expected 64 lowercase hex"):
            DIGEST_METHODS[method](artifact_store, bad)

    def test_local_path(self, artifact_store: ArtifactStore) -> None:
        data = content(3000, seed=7)
        digest = artifact_store.put_stream([data]).digest
        path = artifact_store.local_path(digest)
        if path is not None:
            assert path.is_absolute()
            assert path.read_bytes() == data

    # Listing and garbage collection ----------------------------------------------
    def test_iter_blobs(self, artifact_store: ArtifactStore) -> None:
        assert list(artifact_store.iter_blobs()) == []
        start = datetime.now(UTC)
        digests = {artifact_store.put_stream([content(100, seed=i)]).digest for i in range(3)}
        listed = dict(artifact_store.iter_blobs())
        assert set(listed) == digests
        slack = timedelta(minutes=5)  # server clocks may be skewed
        for modified in listed.values():
            assert modified.utcoffset() == timedelta(0)
            assert start - slack <= modified <= datetime.now(UTC) + slack

    def test_gc_respects_references_and_grace(self, artifact_store: ArtifactStore) -> None:
        keep = artifact_store.put_stream([b"referenced"]).digest
        drop = artifact_store.put_stream([b"orphan"]).digest
        assert collect_garbage(artifact_store, {keep}) == [], "young blobs must survive"
        assert collect_garbage(artifact_store, {keep}, grace=timedelta(0), dry_run=True) == [drop]
        assert artifact_store.exists(drop)
        assert collect_garbage(artifact_store, {keep}, grace=timedelta(0)) == [drop]
        assert not artifact_store.exists(drop)
        assert read_blob(artifact_store, keep) == b"referenced"
        assert collect_garbage(artifact_store, {keep}, grace=timedelta(0)) == []

    def test_gc_rejects_negative_grace(self, artifact_store: ArtifactStore) -> None:
        with pytest.raises(InvalidInput, match=r"^grace must not be negative"):
            collect_garbage(artifact_store, set(), grace=timedelta(seconds=-1))
