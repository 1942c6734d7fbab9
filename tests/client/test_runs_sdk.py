"""``client.runs`` and ``client.algorithms`` on the in-process app, trained by a real worker."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import pandas as pd
import pytest

import openmaas.jobs.handlers.run  # noqa: F401  (registers the "run" job kind)
from openmaas import demo as demo_content
from openmaas.client import Client, Run, RunFailed, Task
from openmaas.demo import DEMOS, load_demo
from openmaas.domain.context import Platform
from openmaas.errors import InvalidInput, NotFound
from openmaas.jobs.worker import Worker


@pytest.fixture
def demo(platform: Platform, admin: Client, monkeypatch: pytest.MonkeyPatch) -> dict[str, Task]:
    """Two of the demo tasks (the small ones) by name."""
    monkeypatch.setattr(demo_content, "DEMOS", {k: DEMOS[k] for k in ("wine", "diabetes")})
    load_demo(platform)
    return {t.name: t for t in admin.tasks.list(project="demo/benchmarks")}


def work(platform: Platform) -> None:
    Worker(platform, kinds=["run"], concurrency=1, poll_interval=0.05).run_until_idle(timeout=120)


def test_algorithm_catalog(admin: Client) -> None:
    names = [a.name for a in admin.algorithms.list()]
    assert {"linear", "lightgbm", "random_forest"} <= set(names) and names == sorted(names)
    assert [a.name for a in admin.algorithms.list("recommendation")] == ["ncf"]
    lgbm = admin.algorithms.get("lightgbm")
    assert lgbm.iterative and "binary" in lgbm.task_types
    n_estimators = next(h for h in lgbm.hyperparameters if h["name"] == "n_estimators")
    assert n_estimators["type"] == "integer" and n_estimators["default"] == 100
    with pytest.raises(InvalidInput, match=r"^unknown algorithm 'nope'; valid: adaboost, "):
        admin.algorithms.get("nope")


def test_create_wait_rank_and_read_results(
    platform: Platform, admin: Client, demo: dict[str, Task], tmp_path: Path
) -> None:
    task = demo["wine"]
    linear = admin.runs.create(task, "linear", name="baseline")
    lgbm = admin.runs.create(task.id, "lightgbm", {"n_estimators": 20}, seed=3)
    assert (linear.state, linear.done, linear.name) == ("queued", False, "baseline")
    assert repr(lgbm) == f"Run(id={lgbm.id}, algorithm='lightgbm', state='queued')"
    assert lgbm.params["n_estimators"] == 20 and lgbm.seed == 3
    work(platform)

    seen: list[str] = []
    assert linear.wait(timeout=5, on_progress=lambda r: seen.append(r.state)) is linear
    assert linear.state == "succeeded" and seen == ["succeeded"]
    lgbm.refresh()
    for run in (linear, lgbm):
        assert run.done and run.metric == "accuracy" and run.contributor == "admin"
        assert run.score == run.metrics["accuracy"]["mean"] and 0.7 < run.score <= 1.0

    board = admin.runs.leaderboard(task)
    assert (board.task_id, board.metric, board.direction, board.total) == (
        task.id, "accuracy", "maximize", 2
    )  # fmt: skip
    assert [e.rank for e in board] == [1, 2]
    by_score = sorted([linear, lgbm], key=lambda r: (-r.score, r.id))
    assert [e.run_id for e in board] == [r.id for r in by_score]
    assert board.items[0].organisations == ["demo"] and board.items[0].contributor == "admin"
    assert [e.run_id for e in admin.runs.leaderboard(task, algorithm="linear")] == [linear.id]
    assert admin.runs.leaderboard(task, contributor="nobody").total == 0
    assert admin.runs.leaderboard(task, org="demo").total == 2
    assert [e.rank for e in admin.runs.leaderboard(task, limit=1, offset=1)] == [2]

    assert [r.id for r in admin.runs.list(task=task)] == [lgbm.id, linear.id]  # newest first
    assert [r.id for r in admin.runs.list(algorithm="linear")] == [linear.id]
    assert admin.runs.list(project="demo/benchmarks", state="succeeded").total == 2
    assert admin.runs.list(state="queued").total == 0

    lines = lgbm.logs()
    assert any("fold 0 of 1 done" in line.message for line in lines)
    assert [x.id for x in lgbm.follow_logs(poll=0.01)] == [x.id for x in lines]  # ended: stops
    assert lgbm.logs(after_id=lines[-1].id) == []

    curves = lgbm.history()
    loss = next(k for k in curves if k.endswith("valid_loss"))
    assert curves[loss][0][0] == 1 and all(isinstance(v, float) for _, v in curves[loss])
    assert list(lgbm.history(key=loss)) == [loss]

    files = {a.name: a for a in lgbm.artifacts()}
    assert {"predictions.parquet", "result.json", "curves.json"} <= set(files)
    saved = lgbm.download_artifact("result.json", tmp_path)
    assert (
        saved == tmp_path / "result.json"
        and saved.stat().st_size == files["result.json"].size_bytes
    )
    assert json.loads(saved.read_text())["algorithm"] == "lightgbm"
    nested = next(name for name in files if "/" in name)
    target = lgbm.download_artifact(nested, tmp_path / "model.bin")
    assert target.stat().st_size == files[nested].size_bytes
    with pytest.raises(NotFound, match=r"^run \d+ has no artifact 'nope.txt'$"):
        lgbm.download_artifact("nope.txt", tmp_path)
    assert not (tmp_path / "nope.txt").exists() and not (tmp_path / "nope.txt.part").exists()

    frame = linear.predictions()
    assert isinstance(frame, pd.DataFrame) and len(frame) > 0

    lgbm.delete()
    with pytest.raises(NotFound, match=r"^run not found$"):
        admin.runs.get(lgbm.id)
    assert [e.run_id for e in admin.runs.leaderboard(task)] == [linear.id]


def test_tasks_are_found_by_name(admin: Client, demo: dict[str, Task]) -> None:
    wine = demo["wine"]
    assert admin.tasks.resolve("wine") == wine.id == admin.tasks.resolve("demo/benchmarks/wine")
    assert admin.tasks.resolve(f"wine@{wine.version}") == admin.tasks.resolve(str(wine.id))
    assert admin.tasks.get("wine").id == wine.id
    assert admin.runs.create("demo/benchmarks/wine", "linear").task_id == wine.id
    assert admin.runs.leaderboard("wine").task_id == wine.id
    with pytest.raises(NotFound, match=r"^task 'wine@9' not found$"):
        admin.tasks.resolve("wine@9")
    with pytest.raises(InvalidInput, match=r"^invalid task 'benchmarks/wine': use an id, NAME"):
        admin.tasks.resolve("benchmarks/wine")

    project = admin.projects.create("demo", "elsewhere")
    frame = pd.DataFrame({"x": range(40), "y": [0, 1] * 20})
    dataset = admin.datasets.upload(project, frame, name="other", target="y")
    other = admin.tasks.create(project, "wine", dataset, type="binary", target="y")
    with pytest.raises(InvalidInput, match=r"^task name 'wine' is in 2 projects \(ids "):
        admin.tasks.resolve("wine")
    assert admin.tasks.resolve("demo/elsewhere/wine") == other.id


def test_failed_and_cancelled_runs_raise_run_failed(
    platform: Platform, admin: Client, demo: dict[str, Task]
) -> None:
    bad = admin.runs.create(demo["diabetes"], "dnn", {"learning_rate": 1000.0, "epochs": 5})
    run = admin.runs.create(demo["wine"], "linear")
    with pytest.raises(TimeoutError, match=rf"^run {run.id} is still queued after 0.1 s$"):
        run.wait(timeout=0.1, poll=0.02)
    assert run.cancel() is run and run.state == "cancelled" and run.done
    with pytest.raises(RunFailed, match=rf"^run {run.id} was cancelled$"):
        admin.runs.wait(run.id)
    with pytest.raises(InvalidInput, match=r"^unknown algorithm 'nope'; valid: "):
        admin.runs.create(run.task_id, "nope")
    with pytest.raises(InvalidInput, match=r"unknown hyperparameter 'trees'"):
        admin.runs.create(run.task_id, "random_forest", {"trees": 3})
    with pytest.raises(NotFound, match=r"^task not found$"):
        admin.runs.leaderboard(999_999)
    assert admin.runs.list().total == 2  # bad requests queue nothing
    work(platform)  # trains the dnn only

    reason = r"\(learning rate 1000 may be too high; lower it or set clip_gradient_norm\)$"
    with pytest.raises(RunFailed, match=rf"^run {bad.id} \(dnn\) failed: .* {reason}") as caught:
        bad.wait(timeout=5)
    assert caught.value.run.state == "failed" and caught.value.details["run_id"] == bad.id
    assert caught.value.code == "run_failed"
    ended = admin.runs.get(bad.id).wait(raise_on_failure=False)
    assert ended.state == "failed" and "may be too high" in (ended.error or "")
    assert admin.runs.get(run.id).state == "cancelled"


def test_run_options_reach_the_run(
    platform: Platform, admin: Client, demo: dict[str, Task]
) -> None:
    params = {"learning_rate": 10.0, "epochs": 2}
    run = admin.runs.create(
        demo["diabetes"], "dnn", params, memory_limit_mb=4096, divergence_retries=3
    )
    assert (run.memory_limit_mb, run.divergence_retries) == (4096, 3)
    with pytest.raises(InvalidInput, match=r"^algorithm 'linear' has no learning_rate to lower"):
        admin.runs.create(demo["diabetes"], "linear", divergence_retries=1)
    work(platform)
    ended = admin.runs.get(run.id).wait(timeout=5)
    assert ended.params["learning_rate"] < 10.0  # diverged at 10, then ran lower
    divergence = ended.environment["divergence"]
    assert divergence["requested_learning_rate"] == 10.0
    assert divergence["learning_rate"] == ended.params["learning_rate"]


def test_an_unbound_run_says_how_to_get_a_bound_one() -> None:
    run = Run({"id": 1, "state": "queued"})
    assert not run.done
    assert copy.copy(run) == run and pickle.loads(pickle.dumps(run)) == run
    with pytest.raises(RuntimeError, match=r"not bound to a client: get it with client\.runs"):
        run.refresh()
