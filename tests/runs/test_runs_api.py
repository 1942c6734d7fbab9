"""Runs end to end: queued through the API, trained by a worker, ranked on the leaderboard."""

from __future__ import annotations

import pytest

import openmaas.jobs.handlers.run  # noqa: F401  (registers the "run" job kind)
from openmaas.demo import load_demo
from openmaas.errors import InvalidInput, NotFound
from openmaas.jobs.worker import Worker


@pytest.fixture
def demo(platform, admin):  # type: ignore[no-untyped-def]
    load_demo(platform)
    return {t.name: t for t in admin.tasks.list(project="demo/benchmarks")}


def work(platform) -> None:  # type: ignore[no-untyped-def]
    Worker(platform, kinds=["run"], concurrency=1, poll_interval=0.05).run_until_idle(timeout=300)


def test_run_trains_and_ranks(platform, admin, http, demo) -> None:
    task = demo["breast_cancer"]
    base = f"/api/v1/tasks/{task.id}/runs"
    auth = {"Authorization": f"Bearer {admin.token}"}
    r1 = http.post(base, json={"algorithm": "linear"}, headers=auth)
    r2 = http.post(
        base, json={"algorithm": "lightgbm", "params": {"n_estimators": 50}}, headers=auth
    )
    assert r1.status_code == r2.status_code == 201, (r1.text, r2.text)
    assert r1.json()["state"] == "queued"
    work(platform)
    for r in (r1, r2):
        run = http.get(f"/api/v1/runs/{r.json()['id']}", headers=auth).json()
        assert run["state"] == "succeeded", run
        assert 0.8 < run["score"] <= 1.0 and run["metric"] == "roc_auc"
    board = http.get(f"/api/v1/tasks/{task.id}/leaderboard", headers=auth).json()
    assert [e["rank"] for e in board["items"]] == [1, 2]
    assert board["direction"] == "maximize"
    scores = [e["score"] for e in board["items"]]
    assert scores == sorted(scores, reverse=True)
    lgbm = r2.json()["id"]
    names = {a["name"] for a in http.get(f"/api/v1/runs/{lgbm}/artifacts", headers=auth).json()}
    assert {"predictions.parquet", "result.json", "curves.json"} <= names
    curves = http.get(f"/api/v1/runs/{lgbm}/metrics", headers=auth).json()
    assert any(k.endswith("valid_loss") for k in curves) and all(curves.values())
    logs = http.get(f"/api/v1/runs/{lgbm}/logs", headers=auth).json()
    assert any("fold 0 of 1 done" in line["message"] for line in logs)


def test_bad_requests_queue_nothing(platform, admin, http, demo) -> None:
    task = demo["diabetes"]
    auth = {"Authorization": f"Bearer {admin.token}"}
    cases = [
        ({"algorithm": "nope"}, "unknown algorithm 'nope'"),
        ({"algorithm": "ncf"}, "does not support task type 'regression'"),
        ({"algorithm": "random_forest", "params": {"n_estimators": 0}}, "n_estimators"),
        ({"algorithm": "random_forest", "params": {"trees": 3}}, "unknown hyperparameter 'trees'"),
        ({"algorithm": "linear", "divergence_retries": 2}, "has no learning_rate to lower"),
        ({"algorithm": "dnn", "memory_limit_mb": 0}, "memory_limit_mb"),
        ({"algorithm": "dnn", "divergence_retries": 6}, "divergence_retries"),
    ]
    for body, message in cases:
        r = http.post(f"/api/v1/tasks/{task.id}/runs", json=body, headers=auth)
        assert r.status_code == 422 and message in r.json()["error"]["message"], r.text
    assert http.get("/api/v1/runs", headers=auth).json()["total"] == 0


def test_cancel_a_queued_run(admin, http, demo) -> None:
    task = demo["wine"]
    auth = {"Authorization": f"Bearer {admin.token}"}
    run = http.post(f"/api/v1/tasks/{task.id}/runs", json={"algorithm": "linear"}, headers=auth)
    out = http.post(f"/api/v1/runs/{run.json()['id']}/cancel", headers=auth).json()
    assert out["state"] == "cancelled"


def test_unknown_run(admin) -> None:
    with pytest.raises((NotFound, InvalidInput)):
        admin._http.get("/runs/999999")
