"""Blobs as objects in an S3 bucket (AWS, MinIO, Ceph ...), through s3fs.

The digest is known only once the last byte is read, so a put streams to a
temporary key ``<prefix>/tmp/<uuid>`` while hashing, then copies it server-side
to ``<prefix>/blobs/ab/cd/<digest>`` and deletes the temporary key. S3 makes a
PUT, a completed multipart upload and a copy visible all at once, so a blob is
never partial. The copy also happens when the blob exists: it rewrites the same
bytes and refreshes ``LastModified`` (see the contract). A crash leaves a stale
temporary key or an unfinished multipart upload (invisible, but billed), both of
which ``cleanup_temp`` removes.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

import s3fs
from botocore.exceptions import BotoCoreError, ClientError

from openmaas.errors import InvalidInput, NotFound, StoreError
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
)

#: Multipart part size: bounds memory per put at about this, and objects at 10,000 parts.
PART_SIZE = 8 << 20

_DRIVER_ERRORS = (OSError, BotoCoreError, ClientError)


@contextlib.contextmanager
def _s3_errors(action: str, *, missing: str | None = None) -> Iterator[None]:
    """Turn s3fs/botocore errors into ``StoreError`` (or ``NotFound`` for a missing blob)."""
    try:
        yield
    except FileNotFoundError as e:
        if missing is None:
            raise StoreError(f"S3 artifact store: could not {action}: {e}") from e
        raise NotFound(f"blob {missing} not found", details={"digest": missing}) from e
    except _DRIVER_ERRORS as e:
        raise StoreError(f"S3 artifact store: could not {action}: {e}") from e


class S3ArtifactStore(ArtifactStore):
    """Blobs under ``s3://bucket/prefix/blobs``; puts in progress under ``.../tmp``.

    ``storage_options`` go to ``s3fs.S3FileSystem`` (``key``, ``secret``,
    ``client_kwargs={"endpoint_url": ...}``; see ``Settings.storage_options``).
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise InvalidInput(
                f"invalid S3 artifact store URL {url!r}: expected s3://bucket[/prefix]",
                details={"url": url},
            )
        self.bucket = parts.netloc
        prefix = parts.path.strip("/")
        self._prefix = f"{prefix}/" if prefix else ""
        # Listing caches would hide blobs written by other processes.
        self._options = {"use_listings_cache": False, **(storage_options or {})}
        self._pid = os.getpid()
        self._fs_of_pid = self._connect()

    def _connect(self) -> Any:
        with _s3_errors("configure the S3 client"):
            return s3fs.S3FileSystem(**self._options)

    @property
    def _fs(self) -> Any:
        """This process's s3fs filesystem: s3fs objects must not cross a fork."""
        if self._pid != os.getpid():
            self._fs_of_pid, self._pid = self._connect(), os.getpid()
        return self._fs_of_pid

    def __repr__(self) -> str:
        return f"S3ArtifactStore('s3://{self.bucket}/{self._prefix}')"

    def _key(self, digest: str) -> str:
        return self._prefix + blob_key(digest)

    def _path(self, key: str) -> str:
        return f"{self.bucket}/{key}"

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        return cast(dict[str, Any], self._fs.call_s3(method, Bucket=self.bucket, **kwargs))

    def _head(self, digest: str) -> dict[str, Any]:
        key = self._key(digest)
        with _s3_errors(f"read blob {digest}", missing=digest):
            return self._call("head_object", Key=key)

    # Writing ---------------------------------------------------------------------
    def put_stream(self, chunks: Source) -> BlobInfo:
        tmp = self._path(f"{self._prefix}tmp/{uuid.uuid4().hex}")
        with _s3_errors("start an upload"):
            f = self._fs.open(tmp, "wb", block_size=PART_SIZE)
        hasher = Hasher()
        try:
            # Errors of the source propagate as they are; only ours are wrapped.
            for chunk in iter_source(chunks):
                hasher.update(chunk)
                with _s3_errors("upload"):
                    f.write(chunk)
            with _s3_errors("upload"):
                f.close()
        except BaseException:
            self._discard(f)
            raise
        info = hasher.info()
        try:
            with _s3_errors(f"store blob {info.digest}"):
                self._fs.cp_file(tmp, self._path(self._key(info.digest)))
        finally:
            with contextlib.suppress(*_DRIVER_ERRORS):
                self._fs.rm_file(tmp)  # a leftover is removed by cleanup_temp
        return info

    @staticmethod
    def _discard(f: Any) -> None:
        """Abort an unfinished upload so nothing, not even the temporary key, is written."""
        with contextlib.suppress(*_DRIVER_ERRORS):
            f.discard()
        # Otherwise the file's __del__ would close it, committing the partial data.
        f.closed = True

    # Reading ---------------------------------------------------------------------
    def open(self, digest: str) -> BinaryIO:
        size = int(self._head(digest)["ContentLength"])
        # Passing the size skips s3fs's ETag pinning: a re-put rewrites the object
        # with the same bytes, which must not break readers that have it open.
        with _s3_errors(f"open blob {digest}", missing=digest):
            return cast(BinaryIO, self._fs.open(self._path(self._key(digest)), "rb", size=size))

    def exists(self, digest: str) -> bool:
        try:
            self._head(digest)
        except NotFound:
            return False
        return True

    def size(self, digest: str) -> int:
        return int(self._head(digest)["ContentLength"])

    # Maintenance -----------------------------------------------------------------
    def delete(self, digest: str) -> None:
        key = self._key(digest)
        with _s3_errors(f"delete blob {digest}"):
            self._call("delete_object", Key=key)  # S3 deletes are idempotent

    def _list(self, prefix: str) -> Iterator[dict[str, Any]]:
        """Objects under ``prefix``, one page in memory at a time."""
        kwargs: dict[str, Any] = {"Prefix": prefix}
        while True:
            with _s3_errors("list objects"):
                page = self._call("list_objects_v2", **kwargs)
            yield from page.get("Contents", [])
            if not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def iter_blobs(self) -> Iterator[tuple[str, datetime]]:
        for obj in self._list(self._prefix + "blobs/"):
            name = obj["Key"].rpartition("/")[2]
            if is_digest(name) and obj["Key"] == self._key(name):
                yield name, obj["LastModified"].astimezone(UTC)

    def cleanup_temp(self, older_than: timedelta = TEMP_MAX_AGE) -> int:
        cutoff = datetime.now(UTC) - check_age(older_than)
        removed = 0
        for obj in self._list(self._prefix + "tmp/"):
            if obj["LastModified"] <= cutoff:
                with _s3_errors("remove a temporary object"):
                    self._call("delete_object", Key=obj["Key"])
                removed += 1
        for upload in self._stale_uploads(cutoff):
            with _s3_errors("abort a multipart upload"):
                self._call("abort_multipart_upload", Key=upload["Key"], UploadId=upload["UploadId"])
            removed += 1
        return removed

    def _stale_uploads(self, cutoff: datetime) -> list[dict[str, Any]]:
        """Unfinished multipart uploads under our prefix started before ``cutoff``."""
        stale: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"Prefix": self._prefix}
        while True:
            with _s3_errors("list multipart uploads"):
                page = self._call("list_multipart_uploads", **kwargs)
            stale += [u for u in page.get("Uploads", []) if u["Initiated"] <= cutoff]
            if not page.get("IsTruncated"):
                return stale
            kwargs["KeyMarker"] = page["NextKeyMarker"]
            kwargs["UploadIdMarker"] = page["NextUploadIdMarker"]


__all__ = ["PART_SIZE", "S3ArtifactStore"]
