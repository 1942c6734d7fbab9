"""Endpoint monitoring end to end: drift against the training profile, live quality from
labels, latency and counts in the stats, Prometheus series only for those who may read."""

from __future__ import annotations

import time

import numpy as np
import orjson
import pandas as pd
import pytest

import openmaas.jobs.handlers.run  # noqa: F401  (registers the "run" job kind)
from openmaas.jobs.worker import Worker
from tests.serving.conftest import deploy_upload

NAMES = ["x0", "x1", "x2", "x3", "x4"]
WINDOW_S = 0.25


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _rows(rng: np.random.Generator, n: int, shift: dict[int, float] | None = None) -> np.ndarray:
    X = rng.standard_normal((n, len(NAMES)))
    for j, delta in (shift or {}).items():
        X[:, j] += delta
    return X


def _labels(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (X[:, 0] + 0.5 * X[:, 1] + 0.5 * rng.standard_normal(len(X)) > 0).astype(int)


@pytest.fixture
def served(platform, admin, http):  # type: ignore[no-untyped-def]
    """A classifier trained by a platform run on a profiled dataset, deployed as 'drift'."""
    rng = np.random.default_rng(0)
    X = _rows(rng, 4000)
    frame = pd.DataFrame(X, columns=NAMES).assign(y=_labels(X, rng))
    admin.orgs.create("lab")
    project = admin.projects.create("lab", "study")
    dataset = admin.datasets.upload("lab/study", frame, name="normal", target="y")
    task = admin.tasks.create("lab/study", "normal", dataset, type="binary", target="y")
    run = admin.runs.create(task, "linear")
    Worker(platform, kinds=["run"], concurrency=1, poll_interval=0.05).run_until_idle(timeout=300)
    auth = _auth(admin.token)
    model = http.post(
        f"/api/v1/projects/{project.id}/models", json={"name": "normal"}, headers=auth
    ).json()
    r = http.post(f"/api/v1/models/{model['id']}/versions", json={"run_id": run.id}, headers=auth)
    assert r.status_code == 201, r.text
    version = r.json()["id"]
    r = http.post(
        f"/api/v1/projects/{project.id}/endpoints",
        json={"name": "drift", "targets": [{"version_id": version, "weight": 100}]},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    runtime = http.app.state.serving
    runtime.monitor.window_s = WINDOW_S
    runtime.monitor.max_rows = 100_000  # bin every row (replicas under load sample)
    runtime.sync()
    return {"runtime": runtime, "auth": auth, "version": version, "rng": rng}


def _predict(served, X: np.ndarray) -> dict:  # type: ignore[no-untyped-def]
    body = orjson.dumps({"columns": NAMES, "data": X.tolist()})
    out = served["runtime"].predict("drift", served["auth"]["Authorization"], body)
    assert out.status == 200, out.body
    return orjson.loads(out.body)  # type: ignore[no-any-return]


def _next_window() -> None:
    time.sleep(WINDOW_S - time.time() % WINDOW_S + 0.01)


def test_drift_flags_a_shifted_feature_and_nothing_in_distribution(served, http) -> None:  # type: ignore[no-untyped-def]
    rng = served["rng"]
    for _ in range(20):
        _next_window()
        for _ in range(2):
            _predict(served, _rows(rng, 300))
    served["runtime"].flush()
    r = http.get("/api/v1/endpoints/drift/drift?windows=40", headers=served["auth"])
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["psi_threshold"] == 0.1 and not report["flagged"]
    (v,) = report["versions"]
    assert v["version_id"] == served["version"] and v["features"] == NAMES
    judged = [w for w in v["windows"] if w["rows"] >= report["min_rows"]]
    assert len(judged) >= 20 and not [w["flagged_features"] for w in judged if w["flagged"]]
    assert max(f["psi"] for w in judged for f in w["features"]) < 0.1
    assert sum(w["predictions"]["rows"] for w in v["windows"]) == 20 * 600
    assert v["windows"][0]["predictions"]["classes"] == ["0", "1", "other"]

    _next_window()
    _predict(served, _rows(rng, 600, shift={2: 0.5}))
    served["runtime"].flush()
    report = http.get("/api/v1/endpoints/drift/drift", headers=served["auth"]).json()
    assert report["flagged"] and report["flagged_features"] == ["x2"]
    (v,) = report["versions"]
    assert v["flagged_features"] == ["x2"] and v["current"]["rows"] == 600
    newest = v["windows"][0]
    assert newest["flagged_features"] == ["x2"]
    x2 = next(f for f in newest["features"] if f["name"] == "x2")
    assert x2["psi"] >= 0.1 and x2["ks"] > 0.1 and x2["p_value"] < 1e-3


def test_labels_give_live_quality_and_stats_count_latency(served, http) -> None:  # type: ignore[no-untyped-def]
    rng, runtime, auth = served["rng"], served["runtime"], served["auth"]
    r = http.patch("/api/v1/endpoints/drift", json={"monitoring": {"sample_rate": 1}}, headers=auth)
    assert r.status_code == 200, r.text
    runtime.monitor.log_size, runtime.monitor.prune_every_s = 10, 0.0
    runtime.log_per_sync = 1000  # log every sampled request before the next sync
    hits = total = 0
    for _ in range(50):
        X = _rows(rng, 4)
        y = _labels(X, rng)
        answer = _predict(served, X)
        hits += int((np.asarray(answer["predictions"]) == y).sum())
        total += len(y)
        body = {"request_id": answer["request_id"], "label": y.tolist()}
        r = http.post("/api/v1/endpoints/drift/feedback", json=body, headers=auth)
        assert r.status_code == 200, r.text
    answer = _predict(served, _rows(rng, 2))
    r = http.post(
        "/api/v1/endpoints/drift/feedback",
        json={"request_id": answer["request_id"], "label": [1]},
        headers=auth,
    )
    assert r.status_code == 422
    assert r.json()["error"]["message"] == "label has 1 values; the request had 2 rows"
    r = http.post(
        "/api/v1/endpoints/drift/feedback",
        json={"request_id": f"{served['version']}-forgotten", "label": 1},
        headers=auth,
    )
    assert r.status_code == 200
    runtime.flush()

    quality = http.get("/api/v1/endpoints/drift/quality", headers=auth).json()
    (v,) = quality["versions"]
    assert v["kind"] == "classification" and v["unmatched"] == 1
    overall = v["overall"]
    assert overall["rows"] == total == 200 and overall["classes"] == ["0", "1"]
    assert overall["accuracy"] == pytest.approx(hits / total)
    assert overall["log_loss"] > 0 and sum(map(sum, overall["confusion"])) == 200

    stats = http.get("/api/v1/endpoints/drift/stats", headers=auth).json()
    mine = [s for s in stats if s["version_id"] == served["version"]]
    assert sum(s["requests"] for s in mine) == 51 and sum(s["rows"] for s in mine) == 202
    assert sum(sum(s["latency_buckets"]) for s in mine) == 51
    # windows are 0.25 s: a label may land in a window without requests (no latency there)
    assert all((s["latency_ms_p50"] is not None) == (s["requests"] > 0) for s in mine)
    assert all("monitor" not in s["state"] for s in mine)
    assert len(mine[0]["latency_buckets"]) == len(mine[0]["latency_buckets_ms"]) + 1

    text = http.get("/metrics", headers=auth).text
    series = f'endpoint="drift",version="{served["version"]}"'
    assert f"openmaas_endpoint_requests_total{{{series}}} 51.0" in text
    assert f"openmaas_endpoint_errors_total{{{series}}} 0.0" in text
    assert f"openmaas_endpoint_request_duration_seconds_count{{{series}}} 51.0" in text
    assert 'endpoint="drift"' not in http.get("/metrics").text  # a private project's endpoint

    records = http.get("/api/v1/endpoints/drift/records?limit=1", headers=auth).json()
    assert records["total"] == 51 + 51  # every request and feedback sampled (the 422 is not)
    runtime.flush()  # a sync prunes the log to its newest log_size entries
    records = http.get("/api/v1/endpoints/drift/records?limit=1", headers=auth).json()
    assert records["total"] == 10


def test_an_upload_without_lineage_is_served_without_drift_but_scored(
    admin, http, model_txt, booster, cancer
) -> None:  # type: ignore[no-untyped-def]
    auth = _auth(admin.token)
    admin.orgs.create("lab")
    project = admin.projects.create("lab", "study")
    deploy_upload(http, admin.token, project.id, "bc", "model.txt", model_txt.read_bytes())
    runtime = http.app.state.serving
    runtime.sync()
    X, y = cancer
    answer = orjson.loads(
        runtime.predict("bc", auth["Authorization"], orjson.dumps({"data": X[:10].tolist()})).body
    )
    fb = orjson.dumps({"request_id": answer["request_id"], "label": y[:10].tolist()})
    assert runtime.feedback("bc", auth["Authorization"], fb).status == 200
    runtime.flush()
    (d,) = http.get("/api/v1/endpoints/bc/drift", headers=auth).json()["versions"]
    assert d["note"].startswith("the version has no training dataset") and not d["flagged"]
    assert d["current"] is None and d["windows"][0]["predictions"] is None
    (q,) = http.get("/api/v1/endpoints/bc/quality", headers=auth).json()["versions"]
    # a binary booster answers probabilities: scored as numbers against the 0/1 labels
    expected = np.abs(booster.predict(X[:10]) - y[:10]).mean()
    assert q["kind"] == "regression" and q["overall"]["rows"] == 10
    assert q["overall"]["mae"] == pytest.approx(expected)
