"""The Ray executor: the executor contract on a real (single-node) Ray cluster, a worker
running jobs through it, and attempts that stop when their worker dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openmaas.config import Settings
from openmaas.demo import load_demo
from openmaas.domain import runs, tasks
from openmaas.domain.context import Platform
from openmaas.domain.identity import bootstrap_admin, principal_for_user
from openmaas.domain.jobs import SUCCEEDED
from openmaas.errors import Unavailable
from openmaas.jobs.executors import make_executor
from openmaas.jobs.executors.ray import RayExecutor
from openmaas.jobs.worker import Worker
from openmaas.testing.jobs import TEST_PRELOAD, ExecutorSuite, add_job, job, pid_alive, wait_for
from tests.jobs.conftest import HEARTBEAT_S, LEASE_S, POLL_S

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A Ray instance for the module (two CPUs); yields its address."""
    context = ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
        namespace="openmaas-tests",
    )  # fmt: skip
    try:
        yield context.address_info["address"]
    finally:
        ray.shutdown()


@pytest.fixture
def executor(platform: Platform, ray_cluster: str) -> RayExecutor:
    return RayExecutor(platform.settings, preload=TEST_PRELOAD, memory_check_s=0.05)


class TestRayExecutor(ExecutorSuite):
    """The contract the local executor passes, on Ray."""


def test_a_worker_runs_jobs_on_ray_and_retries_a_crashed_attempt(
    platform: Platform, executor: RayExecutor
) -> None:
    epochs = add_job(platform, "test.epochs", {"epochs": 3, "epoch_s": 0.05})
    crash = add_job(platform, "test.crash", {"code": 3}, max_attempts=3)
    worker = Worker(
        platform, worker_id="w-ray", kinds=["test.epochs", "test.crash"], lease_s=LEASE_S,
        heartbeat_s=HEARTBEAT_S, poll_interval=POLL_S, memory_limit_mb=1000, executor=executor,
    )  # fmt: skip
    worker.run_until_idle(timeout=60)
    done = job(platform, epochs)
    assert done.state == SUCCEEDED and done.result is not None
    assert done.result["epochs_run"] == [1, 2, 3]
    crashed = job(platform, crash)
    assert crashed.state == SUCCEEDED and crashed.attempt == 2  # the first one died
    assert crashed.result == {"attempt": 2}


def test_a_training_run_on_ray_matches_the_local_one(
    platform: Platform, executor: RayExecutor
) -> None:
    import openmaas.jobs.handlers.run  # noqa: F401  (registers the "run" job kind)

    boot = bootstrap_admin(platform)
    load_demo(platform)
    admin = platform.as_(principal_for_user(platform, boot.user.id))
    task_id = tasks.list_tasks(admin, name="breast_cancer").items[0].task.id
    params = {"n_estimators": 20}
    on_ray = runs.create(admin, task_id, "lightgbm", params, seed=3).run
    executor.options["preload"] = [*TEST_PRELOAD, "openmaas.jobs.handlers.run"]
    Worker(platform, kinds=["run"], poll_interval=POLL_S, executor=executor).run_until_idle(120)
    local = runs.create(admin, task_id, "lightgbm", params, seed=3).run
    Worker(platform, kinds=["run"], poll_interval=POLL_S).run_until_idle(120)
    a, b = runs.get(admin, on_ray.id).run, runs.get(admin, local.id).run
    assert a.state == b.state == "succeeded"
    assert a.score == b.score and a.metrics == b.metrics
    assert [x.name for x in runs.artifacts(admin, a.id)] == [
        x.name for x in runs.artifacts(admin, b.id)
    ]


_DRIVER = """
import sys, time
from openmaas.config import Settings
from openmaas.demo import load_demo
from openmaas.domain import runs, tasks
from openmaas.domain.context import Platform
from openmaas.domain.identity import bootstrap_admin, principal_for_user
from openmaas.jobs import queue
from openmaas.jobs.executors.ray import RayExecutor
from openmaas.jobs.kinds import handler_ref
from openmaas.testing.jobs import TEST_PRELOAD, add_job

platform = Platform(Settings())
executor = RayExecutor(platform.settings, address=sys.argv[1], preload=TEST_PRELOAD)
add_job(platform, "test.sleep", {"seconds": 120})
claim = queue.claim(platform.store, "driver", ["test.sleep"], lease_s=60)
handle = executor.start(claim, handler_ref("test.sleep"))
while True:
    progress = executor.poll(handle).progress
    if progress:
        print(progress["pid"], flush=True)
        time.sleep(600)
    time.sleep(0.05)
"""


def test_an_attempt_stops_when_its_worker_dies(
    platform: Platform, ray_cluster: str, tmp_path: Any
) -> None:
    """The worker (a Ray driver) is SIGKILLed: Ray ends its tasks, and the attempt a
    task supervised exits with it."""
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(_DRIVER))
    env = {**os.environ, **_env(platform.settings)}
    driver = subprocess.Popen(
        [sys.executable, str(script), ray_cluster], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert driver.stdout is not None
        attempt = int(driver.stdout.readline())
        assert pid_alive(attempt)
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
        wait_for(lambda: not pid_alive(attempt), timeout=30)
    finally:
        driver.kill()


def _env(settings: Settings) -> dict[str, str]:
    return {
        "OPENMAAS_HOME": str(settings.home),
        "OPENMAAS_DATABASE_URL": settings.resolved_database_url,
    }


def test_openmaas_worker_executor_ray(platform: Platform, ray_cluster: str, tmp_path: Any) -> None:
    """The CLI: ``openmaas worker --executor ray`` runs jobs on the cluster it is given."""
    job_id = add_job(platform, "test.sleep", {"seconds": 0.1})
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENMAAS_")}
    env.update(_env(platform.settings), OPENMAAS_RAY_ADDRESS=ray_cluster)
    command = [str(Path(sys.executable).parent / "openmaas"), "worker", "--executor", "ray",
               "--module", "openmaas.testing.jobs", "--kinds", "test.sleep"]  # fmt: skip
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: job(platform, job_id).state == SUCCEEDED, timeout=60)
        row = job(platform, job_id)
        assert row.result is not None and row.result["slept"] == 0.1
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    finally:
        worker.kill()


def test_make_executor_picks_the_configured_one(platform: Platform, ray_cluster: str) -> None:
    settings = platform.settings.model_copy(update={"worker_executor": "ray"})
    assert isinstance(make_executor(settings), RayExecutor)
    assert type(make_executor(platform.settings)).__name__ == "LocalExecutor"


def test_a_cluster_too_small_for_the_threads_is_refused(
    platform: Platform, ray_cluster: str
) -> None:
    executor = RayExecutor(platform.settings, threads=64)
    with pytest.raises(Unavailable, match=r"the Ray cluster has 2 CPUs, fewer than the 64"):
        executor.warm_up()


def test_without_ray_the_extra_is_named(
    monkeypatch: pytest.MonkeyPatch, platform: Platform
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(
        Unavailable, match=r"the Ray executor needs Ray: pip install 'openmaas\[ray\]'"
    ):
        RayExecutor(platform.settings)
