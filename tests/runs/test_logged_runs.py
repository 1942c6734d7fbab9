"""Logged runs: parameters, metrics, files and predictions logged from any script."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from openmaas import demo as demo_data
from openmaas.client import Client
from openmaas.domain.run_uploads import check_artifact_name
from openmaas.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from openmaas.testing.world import confident_predictions
from tests.conftest import sdk


@pytest.fixture
def demo(platform, admin, monkeypatch):  # type: ignore[no-untyped-def]
    """The demo tasks these tests use (loading the others costs seconds per test)."""
    monkeypatch.setattr(demo_data, "DEMOS", {n: demo_data.DEMOS[n] for n in ("breast_cancer",)})
    demo_data.load_demo(platform)
    return {t.name: t for t in admin.tasks.list(project="demo/benchmarks")}


@pytest.fixture
def task(demo):  # type: ignore[no-untyped-def]
    return demo["breast_cancer"]


def predictions(admin: Client, task) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    frame = admin.datasets.to_pandas(task.dataset_id, task.dataset_version)
    return confident_predictions(frame, admin.tasks.splits(task), "target")


def test_a_logged_run_is_scored_by_the_server_and_ranked(admin, task, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("tried three learning rates")
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"\x00\x01")
    (model / "sub" / "config.json").write_text("{}")
    preds = predictions(admin, task)
    with admin.runs.start(task, name="script", params={"lr": 0.1}) as run:
        run.log_param("layers", 3)
        for loss in (1.0, 0.5, 0.25):
            run.log_metric("loss", loss)
        run.log_metrics({"acc": 0.9, "f1": 0.8}, step=5)
        run.log_artifact(tmp_path / "notes.txt")
        run.log_model(model)
        scored = run.log_predictions(preds)
        assert (scored.state, scored.kind) == ("running", "logged")
    final = run.run
    assert (final.state, final.name, final.algorithm) == ("succeeded", "script", "custom")
    assert final.params == {"lr": 0.1, "layers": 3}
    same = admin.runs.submit_predictions(task, preds)
    assert final.score == same.score == scored.score and final.metrics == same.metrics
    assert final.history() == {
        "loss": [(0, 1.0), (1, 0.5), (2, 0.25)],
        "acc": [(5, 0.9)],
        "f1": [(5, 0.8)],
    }
    names = {a.name for a in final.artifacts()}
    assert names == {
        "notes.txt",
        "model/weights.bin",
        "model/sub/config.json",
        "predictions.parquet",
    }
    assert len(final.predictions()) == len(preds)
    board = admin.runs.leaderboard(task, kind="logged")
    assert [(e.run_id, e.score) for e in board] == [(final.id, final.score)]


def test_a_script_that_raises_ends_its_run_failed(admin, task) -> None:
    with pytest.raises(RuntimeError, match=r"^boom$"), admin.runs.start(task) as run:
        run.log_metric("loss", 1.0)
        run.log_predictions(predictions(admin, task))
        raise RuntimeError("boom")
    ended = run.run
    assert (ended.state, ended.error) == ("failed", "RuntimeError: boom")
    assert admin.runs.leaderboard(task).total == 0  # scored, but failed: not ranked


def test_a_run_without_predictions_ends_unranked(admin, task) -> None:
    with admin.runs.start(task) as run:
        run.log_metric("accuracy", 0.99)
    ended = run.run
    assert (ended.state, ended.score, ended.metrics) == ("succeeded", None, {})
    assert admin.runs.leaderboard(task).total == 0


def test_an_ended_run_takes_no_more_logs(admin, http, task) -> None:
    run = admin.runs.start(task)
    run.end()
    auth = {"Authorization": f"Bearer {admin.token}"}
    base = f"/api/v1/runs/{run.id}"
    csv = predictions(admin, task).to_csv(index=False).encode()
    calls = [
        ("POST", "/params", {"json": {"params": {"a": 1}}}),
        ("POST", "/metrics", {"json": {"metrics": [{"key": "a", "value": 1}]}}),
        ("PUT", "/artifacts/model.txt", {"content": b"weights"}),
        ("POST", "/predictions", {"params": {"format": "csv"}, "content": csv}),
        ("POST", "/end", {"json": {"state": "failed"}}),
    ]
    for method, path, kw in calls:
        r = http.request(method, base + path, headers=auth, **kw)
        assert r.status_code == 409, (path, r.text)
        message = f"run {run.id} has ended (succeeded); only running runs accept logs"
        assert r.json()["error"]["message"] == message
    assert run.run.state == "succeeded" and run.run.artifacts() == []


def test_only_the_creator_or_a_maintainer_logs_to_a_run(admin, http, task) -> None:
    admin.users.create("eve", "password-123")
    eve = sdk(http, None)
    eve.login("eve", "password-123")
    public = admin.runs.start(task)
    with pytest.raises(PermissionDenied, match=r"^edit on this run needs the maintainer role; you"):
        eve._http.post(f"/runs/{public.id}/metrics", json={"metrics": []})
    admin.orgs.create("lab")
    admin.projects.create("lab", "secret")
    frame = admin.datasets.to_pandas(task.dataset_id)
    dataset = admin.datasets.upload("lab/secret", frame, name="bc", target="target")
    hidden = admin.tasks.create("lab/secret", "bc", dataset, type="binary", target="target")
    private = admin.runs.start(hidden)
    with pytest.raises(NotFound, match=r"^run not found$"):
        eve._http.post(f"/runs/{private.id}/end", json={})
    assert admin.runs.get(private.id).state == "running"


def test_parameters_do_not_change_once_logged(admin, task) -> None:
    run = admin.runs.start(task, params={"lr": 0.1})
    run.log_params({"lr": 0.1, "depth": 3})  # the same value again is fine
    with pytest.raises(Conflict, match=r"^parameter 'lr' was logged as 0\.1; a logged"):
        run.log_param("lr", 0.2)


def test_platform_runs_take_no_logs(admin, task) -> None:
    queued = admin.runs.create(task, "linear")
    with pytest.raises(Conflict, match=f"^run {queued.id} is a platform run; only logged runs"):
        admin._http.post(f"/runs/{queued.id}/metrics", json={"metrics": []})


def test_artifact_names_stay_inside_the_run(admin, http, task) -> None:
    run = admin.runs.start(task)
    auth = {"Authorization": f"Bearer {admin.token}"}
    r = http.put(f"/api/v1/runs/{run.id}/artifacts/%2E%2E/evil", content=b"x", headers=auth)
    assert r.status_code == 422
    message = "invalid artifact name '../evil': no empty, '.' or '..' path segments"
    assert r.json()["error"]["message"] == message
    for name, problem in [
        ("/etc/passwd", "use a relative path with '/' separators"),
        ("a\\b", "use a relative path with '/' separators"),
        ("C:/x", "use a relative path with '/' separators"),
        ("a//b", "no empty, '.' or '..' path segments"),
        ("a/./b", "no empty, '.' or '..' path segments"),
        ("x" * 257, "use 1 to 256 characters"),
        ("predictions.parquet", "predictions.parquet is where the server keeps scored"),
    ]:
        with pytest.raises(InvalidInput, match="^invalid artifact name .*: " + problem[:20]):
            check_artifact_name(name)
    assert check_artifact_name("models/final/model.txt") == "models/final/model.txt"
