"""A ``serve-endpoint`` replica under load: switching versions, revoking tokens, stopping."""

from __future__ import annotations

import json
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
import lightgbm as lgb
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from starlette.testclient import TestClient

from openmaas.api.app import create_app
from openmaas.config import Settings
from openmaas.domain.context import Platform
from openmaas.domain.identity import bootstrap_admin

pytestmark = pytest.mark.integration
NAMES = [f"f{i}" for i in range(30)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class World:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.platform = Platform(Settings(home=home))
        self.platform.prepare()
        self.token = bootstrap_admin(self.platform).token
        self.api = TestClient(create_app(self.platform, prepare=False))
        self.auth = {"Authorization": f"Bearer {self.token}"}
        X, y = load_breast_cancer(return_X_y=True)
        self.X = X
        org = self.ok("POST", "/orgs", json={"name": "lab"})
        assert org
        project = self.ok("POST", "/projects", json={"org": "lab", "name": "serving"})
        model = self.ok("POST", f"/projects/{project['id']}/models", json={"name": "cancer"})
        self.versions = []
        for rounds in (5, 400):
            booster = lgb.train(
                {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 1},
                lgb.Dataset(X, y, feature_name=NAMES),
                num_boost_round=rounds,
            )
            v = self.api.post(
                f"/api/v1/models/{model['id']}/versions/upload",
                params={"filename": "model.txt"},
                content=booster.model_to_string().encode(),
                headers=self.auth,
            )
            assert v.status_code == 201, v.text
            self.versions.append(v.json()["id"])
        self.ok(
            "POST",
            f"/projects/{project['id']}/endpoints",
            json={"name": "cancer", "targets": [{"version_id": self.versions[0], "weight": 100}]},
        )

    def ok(self, method: str, path: str, **kw):  # type: ignore[no-untyped-def]
        r = self.api.request(method, f"/api/v1{path}", headers=self.auth, **kw)
        assert r.is_success, r.text
        return r.json() if r.content else None


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path / "home")
    yield w
    w.platform.store.dispose()


def _replica(home: Path, port: int) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "openmaas"
    env = {**os.environ, "OPENMAAS_HOME": str(home), "OPENMAAS_SERVING_SYNC_S": "0.5"}
    proc = subprocess.Popen([str(exe), "serve-endpoint", "cancer", "--port", str(port)], env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the replica did not become ready")


@pytest.fixture
def replica(world: World) -> Iterator[str]:
    port = _free_port()
    proc = _replica(world.home, port)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


def test_switching_versions_under_load_fails_no_request(world: World, replica: str) -> None:
    url = f"{replica}/api/v1/endpoints/cancer/predict"
    rows = world.X[:3].tolist()
    results: list[tuple[float, int, int]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(headers=world.auth, timeout=10) as c:
            while not stop.is_set():
                r = c.post(url, json={"data": rows})
                version = r.json().get("version", -1) if r.status_code == 200 else -1
                results.append((time.monotonic(), r.status_code, version))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    v1, v2 = world.versions
    world.ok(
        "PUT",
        "/endpoints/cancer/deployment",
        json={"targets": [{"version_id": v1, "weight": 70}, {"version_id": v2, "weight": 30}]},
    )
    switched = time.monotonic()
    time.sleep(6)
    stop.set()
    for t in threads:
        t.join()
    assert results and all(status == 200 for _, status, _ in results), {s for _, s, _ in results}
    after = [v for at, _, v in results if at > switched + 2.5]
    assert len(after) > 300
    share = after.count(v2) / len(after)
    assert abs(share - 0.3) <= 0.05, share


def test_a_revoked_token_is_refused_by_the_replica_within_5_s(world: World, replica: str) -> None:
    made = world.ok("POST", "/tokens", json={"name": "caller", "scopes": ["predict"]})
    url = f"{replica}/api/v1/endpoints/cancer/predict"
    headers = {"Authorization": f"Bearer {made['token']}"}
    body = {"data": world.X[:1].tolist()}
    assert httpx.post(url, json=body, headers=headers).status_code == 200
    world.ok("DELETE", f"/tokens/{made['id']}")
    start = time.monotonic()
    while httpx.post(url, json=body, headers=headers).status_code == 200:
        assert time.monotonic() - start < 5
        time.sleep(0.1)
    assert httpx.post(url, json=body, headers=headers).status_code == 401


def test_graceful_shutdown_completes_requests_in_flight(world: World) -> None:
    v2 = world.versions[1]
    world.ok(
        "PUT", "/endpoints/cancer/deployment", json={"targets": [{"version_id": v2, "weight": 100}]}
    )
    port = _free_port()
    proc = _replica(world.home, port)
    big = np.tile(world.X, (20, 1))
    body = json.dumps({"data": big.tolist()}).encode()
    first_sent, release = threading.Event(), threading.Event()
    answers: list[httpx.Response] = []

    def chunks() -> Iterator[bytes]:
        # Half the body, then wait: the request is in flight when SIGTERM arrives.
        yield body[: len(body) // 2]
        first_sent.set()
        release.wait(30)
        yield body[len(body) // 2 :]

    def call() -> None:
        answers.append(
            httpx.post(
                f"http://127.0.0.1:{port}/api/v1/endpoints/cancer/predict",
                content=chunks(),
                headers={**world.auth, "Content-Type": "application/json"},
                timeout=60,
            )
        )

    caller = threading.Thread(target=call)
    caller.start()
    assert first_sent.wait(30)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    release.set()
    caller.join(timeout=60)
    # uvicorn re-raises the signal once it has shut down gracefully
    assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    assert answers and answers[0].status_code == 200
    assert len(answers[0].json()["predictions"]) == len(big)


def test_replica_metrics_show_endpoints_to_those_who_may_read_them(
    world: World, replica: str
) -> None:
    body = {"data": world.X[:2].tolist()}
    for _ in range(5):
        r = httpx.post(f"{replica}/api/v1/endpoints/cancer/predict", json=body, headers=world.auth)
        assert r.status_code == 200
    deadline = time.monotonic() + 10
    while True:
        text = httpx.get(f"{replica}/metrics", headers=world.auth).text
        if 'endpoint="cancer"' in text or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert "openmaas_endpoint_requests_total" in text and 'endpoint="cancer"' in text
    anonymous = httpx.get(f"{replica}/metrics").text
    assert 'endpoint="cancer"' not in anonymous  # a private project's endpoint
    assert httpx.get(f"{replica}/healthz").status_code == 200
