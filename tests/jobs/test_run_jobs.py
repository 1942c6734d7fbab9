"""Training runs on real worker processes: crashes, divergence, cancellation, warm starts."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from openmaas.demo import load_demo
from openmaas.domain import datasets, runs, tasks
from openmaas.domain.context import Ctx, Platform
from openmaas.domain.identity import bootstrap_admin, principal_for_user
from openmaas.domain.jobs import CANCELLED, FAILED, RUNNING, SUCCEEDED
from openmaas.errors import InvalidInput
from openmaas.ml.tasks import TaskSpec
from openmaas.store.metadata.tables import Job, JobLog, RunArtifact, Task
from openmaas.testing.jobs import job, wait_for
from tests.jobs.conftest import WorkerProcesses

pytestmark = pytest.mark.slow


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the claim and fencing rules under these runs are tested on both stores."""
    return f"sqlite:///{tmp_path / 'openmaas.db'}"


RUN_WORKER = ("--module", "openmaas.jobs.handlers.run", "--kinds", "run")
# Online learning (batch_size 1) makes each epoch take a while, so a test can catch one.
SLOW_DNN = {"epochs": 8, "batch_size": 1, "width": 16, "depth": 1, "patience": 100}


@pytest.fixture
def admin(platform: Platform) -> Ctx:
    boot = bootstrap_admin(platform)
    load_demo(platform)
    return platform.as_(principal_for_user(platform, boot.user.id))


def demo_task(admin: Ctx, name: str) -> int:
    return tasks.list_tasks(admin, name=name).items[0].task.id


def start(workers: WorkerProcesses, name: str, *extra: str) -> Any:
    return workers.start(name, *RUN_WORKER, *extra, preload=None)


def logs(platform: Platform, job_id: int) -> list[str]:
    with platform.store.read() as s:
        q = select(JobLog.message).where(JobLog.job_id == job_id).order_by(JobLog.id)
        return list(s.scalars(q))


def finished(platform: Platform, job_id: int) -> Job:
    return wait_for(
        lambda: (j := job(platform, job_id)).state in (SUCCEEDED, FAILED, CANCELLED) and j,
        timeout=180,
    )


def test_a_killed_worker_s_run_resumes_elsewhere_and_matches_an_uninterrupted_one(
    platform: Platform, admin: Ctx, workers: WorkerProcesses
) -> None:
    task_id = demo_task(admin, "breast_cancer")
    killed = runs.create(admin, task_id, "dnn", SLOW_DNN, seed=7).run
    # a checkpoint every epoch: with the default (at most one per 5 s) a run that trains
    # in under 5 s never writes one, and what is killed would depend on the machine
    workers.env["OPENMAAS_JOB_CHECKPOINT_INTERVAL_S"] = "0"
    a = start(workers, "worker-a")
    wait_for(lambda: (job(platform, killed.job_id).checkpoint.get("fit") or {}).get("epoch", 0)
             >= 3, timeout=120)  # fmt: skip
    reached = job(platform, killed.job_id).checkpoint["fit"]
    workers.signal_all(a, signal.SIGKILL)
    a.wait(10)
    start(workers, "worker-b")
    done = finished(platform, killed.job_id)
    assert done.state == SUCCEEDED and (done.attempt, done.worker_id) == (2, "worker-b")
    assert any(
        line == f"resuming {reached['key']} from epoch {reached['epoch']}"
        or line.startswith(f"resuming {reached['key']} from epoch ")
        for line in logs(platform, killed.job_id)
    )

    # The same run without a crash, for comparison.
    clean = runs.create(admin, task_id, "dnn", SLOW_DNN, seed=7).run
    clean_done = finished(platform, clean.job_id)
    assert clean_done.state == SUCCEEDED
    a_run, b_run = runs.get(admin, killed.id).run, runs.get(admin, clean.id).run
    assert a_run.score == b_run.score and a_run.metrics == b_run.metrics
    assert done.result is not None and clean_done.result is not None
    assert done.result["epochs_trained"] < 2 * clean_done.result["epochs_trained"]
    with platform.store.read() as s:  # recorded exactly once
        count = s.scalar(
            select(func.count())
            .select_from(RunArtifact)
            .where(RunArtifact.run_id == killed.id, RunArtifact.name == "result.json")
        )
    assert count == 1


def test_divergence_fails_the_run_with_its_reason_and_the_worker_lives_on(
    platform: Platform, admin: Ctx, workers: WorkerProcesses
) -> None:
    task_id = demo_task(admin, "diabetes")
    bad = runs.create(admin, task_id, "dnn", {"learning_rate": 1000.0, "epochs": 5}).run
    good = runs.create(admin, task_id, "linear").run
    start(workers, "worker-a")
    failed = finished(platform, bad.job_id)
    assert failed.state == FAILED and failed.error_code == "training_diverged"
    assert "may be too high" in (failed.error or "") or "diverged" in (failed.error or "")
    view = runs.get(admin, bad.id)
    assert view.state == FAILED and view.error == failed.error
    assert finished(platform, good.job_id).state == SUCCEEDED  # same worker, next job


def test_a_diverging_run_retries_with_a_lower_learning_rate_when_asked(
    platform: Platform, admin: Ctx, workers: WorkerProcesses
) -> None:
    task_id = demo_task(admin, "diabetes")
    params = {"learning_rate": 10.0, "epochs": 3}
    saved = runs.create(admin, task_id, "dnn", params, divergence_retries=3).run
    hopeless = runs.create(admin, task_id, "dnn", {**params, "learning_rate": 1000.0},
                           divergence_retries=1).run  # fmt: skip
    start(workers, "worker-a")

    done = finished(platform, saved.job_id)
    assert done.state == SUCCEEDED, done.error
    view = runs.get(admin, saved.id)
    divergence = view.run.environment["divergence"]
    tried = [r["learning_rate"] for r in divergence["retries"]]  # 10 diverges, maybe 1 too
    assert tried == pytest.approx([10.0, 1.0][: len(tried)]) and tried
    assert view.run.params["learning_rate"] == pytest.approx(tried[-1] / 10)
    assert divergence["requested_learning_rate"] == 10.0
    assert divergence["learning_rate"] == view.run.params["learning_rate"]
    assert all("may be too high" in r["error"] for r in divergence["retries"])
    assert view.options == {"memory_limit_mb": None, "divergence_retries": 3}
    lines = logs(platform, saved.job_id)
    assert any(line.startswith("training diverged with learning_rate=10: ") and
               line.endswith("retrying with learning_rate=1") for line in lines)  # fmt: skip

    failed = finished(platform, hopeless.job_id)
    assert failed.state == FAILED and failed.error_code == "training_diverged"
    assert "(after 1 retries with lower learning rates; 1000 diverged before)" in (
        failed.error or ""
    )
    assert "learning rate 100 may be too high" in (failed.error or "")


def test_a_run_over_its_own_memory_limit_fails_cleanly_and_the_worker_lives_on(
    platform: Platform, admin: Ctx, workers: WorkerProcesses
) -> None:
    task_id = demo_task(admin, "breast_cancer")
    hog = runs.create(admin, task_id, "dnn", SLOW_DNN, memory_limit_mb=1).run
    good = runs.create(admin, task_id, "linear", memory_limit_mb=4096).run
    start(workers, "worker-a")
    failed = finished(platform, hog.job_id)
    assert (failed.state, failed.error_code) == (FAILED, "memory_limit")
    view = runs.get(admin, hog.id)
    assert view.state == FAILED and view.options["memory_limit_mb"] == 1
    assert (view.error or "").startswith("the job exceeded the memory limit of 1 MB (it used ")
    assert (view.error or "").endswith("; the limit is the job's own memory_limit_mb")
    assert finished(platform, good.job_id).state == SUCCEEDED  # same worker, next job


def test_run_options_are_checked_before_anything_is_queued(admin: Ctx) -> None:
    task_id = demo_task(admin, "breast_cancer")
    with pytest.raises(InvalidInput, match=r"^algorithm 'linear' has no learning_rate to lower"):
        runs.create(admin, task_id, "linear", divergence_retries=2)
    with pytest.raises(InvalidInput, match=r"^memory_limit_mb must be an integer between 1 "):
        runs.create(admin, task_id, "dnn", memory_limit_mb=0)
    with pytest.raises(InvalidInput, match=r"^divergence_retries must be an integer between 0 "):
        runs.create(admin, task_id, "dnn", divergence_retries=9)
    assert runs.list_runs(admin, task_id=task_id).items == []


def test_cancelling_a_running_run_stops_it(
    platform: Platform, admin: Ctx, workers: WorkerProcesses
) -> None:
    task_id = demo_task(admin, "breast_cancer")
    run = runs.create(admin, task_id, "dnn", {**SLOW_DNN, "epochs": 200}).run
    start(workers, "worker-a")
    wait_for(lambda: job(platform, run.job_id).state == RUNNING, timeout=60)
    runs.cancel(admin, run.id)
    assert finished(platform, run.job_id).state == CANCELLED
    assert runs.get(admin, run.id).state == CANCELLED


def test_a_warm_started_run_records_its_parent(
    platform: Platform, admin: Ctx, workers: WorkerProcesses
) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "z": rng.normal(size=300)})
    frame["y"] = np.where(frame["x"] + 0.3 * rng.normal(size=300) > 0, "yes", "no")
    project_id = tasks.get(admin, demo_task(admin, "wine")).task.project_id
    path = platform.settings.home / "grow.parquet"
    frame.iloc[:200].to_parquet(path)
    ds, _ = datasets.create(admin, project_id, "grow", path, "parquet")
    spec = TaskSpec.model_validate({"type": "binary", "target_columns": ["y"]})
    task = tasks.create(admin, project_id, "grow", ds.dataset.id, spec).task
    params = {"n_estimators": 20}
    parent = runs.create(admin, task.id, "lightgbm", params).run
    start(workers, "worker-a")
    assert finished(platform, parent.job_id).state == SUCCEEDED
    frame.iloc[200:].to_parquet(path)
    datasets.append(admin, ds.dataset.id, path, "parquet")
    rebased = tasks.rebase(admin, task.id).task
    child = runs.create(admin, rebased.id, "lightgbm", params, parent_run_id=parent.id).run
    assert finished(platform, child.job_id).state == SUCCEEDED
    view = runs.get(admin, child.id)
    assert view.run.parent_id == parent.id
    with platform.store.read() as s:
        assert s.get(Task, rebased.id).parent_id == task.id  # type: ignore[union-attr]
    result = runs.artifact(admin, child.id, "result.json")
    with platform.artifacts.open(result.digest) as f:
        import json

        assert json.load(f)["parent"] is not None
