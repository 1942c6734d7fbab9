"""Killing the API process mid-upload leaves nothing half-written visible."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from openmaas.client import Client
from openmaas.config import Settings
from openmaas.domain.context import Platform
from openmaas.domain.identity import bootstrap_admin
from openmaas.store.metadata.tables import Dataset, DatasetVersion

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OPENMAAS_HOME": str(home)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "openmaas.api.app:app_from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def _rows(n: int) -> Iterator[bytes]:
    yield b"id,x,label\n"
    for i in range(n):
        yield f"{i},{i * 0.5},{'a' if i % 2 else 'b'}\n".encode()


@pytest.mark.parametrize("phase", ["receiving", "ingesting"])
def test_kill_during_upload(tmp_path: Path, phase: str) -> None:
    home = tmp_path / "home"
    platform = Platform(Settings(home=home))
    platform.prepare()
    token = bootstrap_admin(platform).token
    platform.store.dispose()
    port = _free_port()
    proc = _start(home, port)
    client = Client(f"http://127.0.0.1:{port}", token)
    client.orgs.create("lab")
    project = client.projects.create("lab", "p")

    sent = threading.Event()
    body = b"".join(_rows(400_000 if phase == "ingesting" else 50_000))

    def slow_body() -> Iterator[bytes]:
        step = 64 * 1024
        for i in range(0, len(body), step):
            yield body[i : i + step]
            if phase == "receiving" and i > len(body) // 3:
                sent.set()
                time.sleep(0.05)
        sent.set()

    def upload() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the server dies under us
            httpx.post(
                f"http://127.0.0.1:{port}/api/v1/projects/{project.id}/datasets",
                params={"name": "big", "format": "csv"},
                content=slow_body(),
                headers={"Authorization": f"Bearer {token}", "Content-Length": str(len(body))},
                timeout=60,
            )

    t = threading.Thread(target=upload)
    t.start()
    assert sent.wait(30)
    if phase == "ingesting":
        time.sleep(0.3)  # the body is in; parsing and storing run now
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    t.join(30)

    # Nothing visible: no dataset, no version, and every stored blob is whole.
    platform = Platform(Settings(home=home))
    with platform.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Dataset)) == 0
        assert s.scalar(select(func.count()).select_from(DatasetVersion)) == 0
    for digest, _ in platform.artifacts.iter_blobs():
        h = hashlib.sha256()
        for chunk in platform.artifacts.iter_chunks(digest):
            h.update(chunk)
        assert h.hexdigest() == digest

    # The restarted server works and the same upload now succeeds.
    proc = _start(home, port)
    try:
        ds = client.datasets.upload(project.id, _csv(tmp_path, body), name="big")
        assert client.datasets.version(ds).n_rows == body.count(b"\n") - 1
    finally:
        proc.terminate()
        proc.wait(10)


def _csv(tmp_path: Path, body: bytes) -> Path:
    path = tmp_path / "big.csv"
    path.write_bytes(body)
    return path
