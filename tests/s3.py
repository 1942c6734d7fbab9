"""A real S3 API for tests, served by moto in a subprocess (fixture `s3_server`)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from openmaas.config import Settings

S3_BUCKET = "openmaas-test"


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    bucket: str
    storage_options: dict[str, Any]

    def client(self) -> Any:
        """A plain boto3 client, for arranging state the store API cannot create."""
        import boto3

        opts = self.storage_options
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=opts["key"],
            aws_secret_access_key=opts["secret"],
            region_name=opts["client_kwargs"]["region_name"],
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], log: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"moto_server exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    pytest.fail(f"moto_server did not answer at {url} within 20 s; see {log}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A moto S3 server on a free local port with one empty bucket, for the whole session."""
    pytest.importorskip("moto.server", reason="needs moto[server] (pip install -e .[dev])")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(f"{endpoint}/moto-api/", proc, str(log_path))
        settings = Settings(
            s3_endpoint_url=endpoint,
            s3_access_key_id="testing",
            s3_secret_access_key="testing",
            s3_region="us-east-1",
        )
        server = S3Server(endpoint, S3_BUCKET, settings.storage_options())
        server.client().create_bucket(Bucket=S3_BUCKET)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
