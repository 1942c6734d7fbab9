"""The artifact store contract over every backend, plus backend-specific behaviour."""

from __future__ import annotations

import os
import re
import time
import uuid
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from openmaas.errors import InvalidInput, StoreError
from openmaas.store.artifacts import _SCHEMES as SCHEMES
from openmaas.store.artifacts import (
    ArtifactStore,
    LocalArtifactStore,
    open_artifact_store,
    register_artifact_scheme,
)
from openmaas.store.artifacts.base import blob_key
from openmaas.testing.artifacts import ArtifactStoreSuite, sha256

if TYPE_CHECKING:  # conftest modules are not importable at run time
    from tests.s3 import S3Server

BACKENDS = ["local", pytest.param("s3", marks=pytest.mark.s3)]


def _s3_store(server: S3Server, prefix: str = "", bucket: str = "") -> ArtifactStore:
    # A fresh prefix per test keeps tests independent on the shared bucket.
    url = f"s3://{bucket or server.bucket}/{prefix or uuid.uuid4().hex}"
    return open_artifact_store(url, server.storage_options)


@pytest.fixture(params=BACKENDS)
def artifact_store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return open_artifact_store(tmp_path / "artifacts")
    return _s3_store(request.getfixturevalue("s3_server"))


class TestArtifactStore(ArtifactStoreSuite):
    """Every backend keeps the whole contract."""


# The interface -----------------------------------------------------------------
class _HalfStore(ArtifactStore):
    def put_stream(self, chunks: Any) -> Any:
        raise NotImplementedError

    def open(self, digest: str) -> Any:
        raise NotImplementedError


def test_half_implemented_store_cannot_be_instantiated() -> None:
    with pytest.raises(
        TypeError,
        match=r"Can't instantiate abstract class _HalfStore.*"
        r"cleanup_temp.*delete.*exists.*iter_blobs.*size",
    ):
        _HalfStore()  # type: ignore[abstract]


# The registry ------------------------------------------------------------------
def test_unknown_scheme_names_the_known_ones() -> None:
    with pytest.raises(InvalidInput) as info:
        open_artifact_store("gs://bucket/prefix")
    assert info.value.message == (
        "unknown artifact store scheme 'gs'; known schemes: file, s3 (or a plain local path)"
    )
    assert info.value.details == {"scheme": "gs", "known": ["file", "s3"]}
    assert info.value.status == 422


@pytest.mark.parametrize("form", ["path", "str", "file_url", "file_localhost"])
def test_local_paths_and_file_urls_open_a_local_store(tmp_path: Path, form: str) -> None:
    url = {
        "path": tmp_path,
        "str": str(tmp_path),
        "file_url": tmp_path.as_uri(),
        "file_localhost": f"file://localhost{tmp_path}",
    }[form]
    store = open_artifact_store(url, {"key": "ignored by local stores"})
    assert isinstance(store, LocalArtifactStore)
    assert store.root == tmp_path


def test_remote_file_url_is_rejected() -> None:
    with pytest.raises(InvalidInput, match=r"^invalid file URL 'file://host/x': only local"):
        open_artifact_store("file://host/x")


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", "s3://bucket/p?x=1"])
def test_malformed_s3_url_is_rejected(url: str) -> None:
    with pytest.raises(
        InvalidInput, match=rf"^invalid S3 artifact store URL {re.escape(repr(url))}"
    ):
        open_artifact_store(url)


def test_registered_scheme_is_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[tuple[str, Any]] = []

    def factory(url: str, options: Any) -> ArtifactStore:
        opened.append((url, options))
        return LocalArtifactStore(tmp_path)

    monkeypatch.setitem(SCHEMES, "mem", factory)  # undone after the test
    register_artifact_scheme("MEM", factory)
    assert isinstance(open_artifact_store("mem://x", {"a": 1}), LocalArtifactStore)
    assert opened == [("mem://x", {"a": 1})]


# Local backend -----------------------------------------------------------------
def test_local_layout_is_sharded_by_digest(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest = store.put_stream([b"layout"]).digest
    expected = tmp_path / "blobs" / digest[:2] / digest[2:4] / digest
    assert blob_key(digest) == f"blobs/{digest[:2]}/{digest[2:4]}/{digest}"
    assert store.local_path(digest) == expected
    assert expected.read_bytes() == b"layout"
    assert os.listdir(tmp_path / "tmp") == []


def test_local_iter_blobs_ignores_strays(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest = store.put_stream([b"real"]).digest
    shard = tmp_path / "blobs" / digest[:2] / digest[2:4]
    (shard / "notes.txt").write_text("not a blob")
    wrong_shard = tmp_path / "blobs" / "00" / "00"
    wrong_shard.mkdir(parents=True, exist_ok=True)
    (wrong_shard / sha256(b"elsewhere")).write_bytes(b"elsewhere")
    assert [d for d, _ in store.iter_blobs()] == [digest]


def test_local_cleanup_temp_removes_only_old_leftovers(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest = store.put_stream([b"blob"]).digest
    old, fresh = tmp_path / "tmp" / "old.part", tmp_path / "tmp" / "fresh.part"
    old.write_bytes(b"crashed put")
    fresh.write_bytes(b"put in progress")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert store.cleanup_temp() == 1
    assert not old.exists()
    assert fresh.exists()
    assert store.exists(digest)


def test_local_store_errors_are_store_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StoreError, match=r"^local artifact store: could not create") as info:
        LocalArtifactStore(tmp_path / "file" / "store")
    assert isinstance(info.value.__cause__, OSError)


# S3 backend --------------------------------------------------------------------
@pytest.mark.s3
def test_s3_layout_is_sharded_by_digest(s3_server: S3Server) -> None:
    prefix = uuid.uuid4().hex
    store = _s3_store(s3_server, prefix)
    digest = store.put_stream([b"layout"]).digest
    with closing(s3_server.client()) as client:
        listing = client.list_objects_v2(Bucket=s3_server.bucket, Prefix=prefix)
    keys = [o["Key"] for o in listing["Contents"]]
    assert keys == [f"{prefix}/blobs/{digest[:2]}/{digest[2:4]}/{digest}"]
    assert store.local_path(digest) is None


@pytest.mark.s3
def test_s3_cleanup_temp_removes_stale_keys_and_uploads(s3_server: S3Server) -> None:
    prefix = uuid.uuid4().hex
    store = _s3_store(s3_server, prefix)
    digest = store.put_stream([b"blob"]).digest
    with closing(s3_server.client()) as client:
        # What a killed process leaves: a temporary object and an unfinished upload.
        client.put_object(Bucket=s3_server.bucket, Key=f"{prefix}/tmp/leftover", Body=b"x")
        client.create_multipart_upload(Bucket=s3_server.bucket, Key=f"{prefix}/tmp/crashed")
        # Not ours: another prefix in the same bucket.
        client.create_multipart_upload(Bucket=s3_server.bucket, Key="other/tmp/crashed")
        removed = store.cleanup_temp()
        # A fresh temporary object may belong to a running put and is kept. (moto dates
        # every multipart upload 2010-11-10, so the upload may count as stale already.)
        assert client.head_object(Bucket=s3_server.bucket, Key=f"{prefix}/tmp/leftover")
        assert removed + store.cleanup_temp(older_than=timedelta(0)) == 2
        assert "Contents" not in client.list_objects_v2(
            Bucket=s3_server.bucket, Prefix=f"{prefix}/tmp/"
        )
        uploads = client.list_multipart_uploads(Bucket=s3_server.bucket).get("Uploads", [])
        assert [u["Key"] for u in uploads] == ["other/tmp/crashed"]
        client.abort_multipart_upload(
            Bucket=s3_server.bucket, Key="other/tmp/crashed", UploadId=uploads[0]["UploadId"]
        )
    assert store.exists(digest)


@pytest.mark.s3
def test_s3_driver_errors_are_store_errors(s3_server: S3Server) -> None:
    store = _s3_store(s3_server, bucket="no-such-bucket")
    with pytest.raises(StoreError, match=r"^S3 artifact store: could not upload") as info:
        store.put_stream([b"data"])
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(StoreError, match=r"^S3 artifact store: could not list objects"):
        list(store.iter_blobs())
