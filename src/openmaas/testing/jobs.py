"""Tiny job kinds for tests, and the ``Executor`` contract as a test class.

Importing this module registers the ``test.*`` kinds below. Attempts run in
other processes, which import their handler from this module, so the kinds
live here rather than in a test file.

``ExecutorSuite`` states the promises of ``openmaas.jobs.executors.base``;
subclass it in a test module and provide two fixtures: ``platform`` (a
prepared ``Platform`` on an empty database) and ``executor`` (the executor
under test, starting attempts against that platform's settings)::

    class TestLocalExecutor(ExecutorSuite):
        pass
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from openmaas.domain.context import Platform
from openmaas.domain.jobs import FAILED, SUCCEEDED, enqueue
from openmaas.errors import InvalidInput
from openmaas.jobs import queue
from openmaas.jobs.executors.base import Executor, Handle, Status
from openmaas.jobs.kinds import TransientError, handler_ref, register_kind
from openmaas.jobs.runner import JobContext
from openmaas.store.metadata.tables import AuditEvent, Job

MiB = 1 << 20
#: Modules a test forkserver preloads: the test kinds and the runner (light and fast).
TEST_PRELOAD = ["openmaas.testing.jobs", "openmaas.jobs.runner"]
RESULT_ACTION = "test.result"


# Kinds -----------------------------------------------------------------------------------


def noop(ctx: JobContext) -> dict[str, Any]:
    """Returns when its handler ran (wall clock) and its pid: for start-up latency."""
    return {"t": time.time(), "pid": os.getpid()}


def imports(ctx: JobContext) -> dict[str, Any]:
    """Imports torch, LightGBM and scikit-learn; instant when the forkserver preloaded them."""
    t0 = time.time()
    import lightgbm  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    import torch

    return {"t": t0, "import_s": time.time() - t0, "torch_threads": torch.get_num_threads()}


def sleep(ctx: JobContext) -> dict[str, Any]:
    """Sleeps ``payload["seconds"]``, reporting progress and its pid."""
    ctx.progress({"pid": os.getpid()})
    ctx.log(f"pid {os.getpid()}")
    time.sleep(float(ctx.payload.get("seconds", 1.0)))
    return {"slept": ctx.payload.get("seconds", 1.0)}


def epochs(ctx: JobContext) -> None:
    """Counts ``epochs`` epochs of ``epoch_s`` seconds, checkpointing each; resumes.

    The result says which epoch it started from; its one result row (an audit
    event with action ``test.result``) is written with the fenced finish.
    """
    total, epoch_s = int(ctx.payload["epochs"]), float(ctx.payload.get("epoch_s", 0.1))
    done, state = 0, []
    resumed = ctx.resume()
    if resumed is not None:
        state = json.loads(resumed[0])
        done = int(resumed[1]["epoch"])
    ctx.log(f"pid {os.getpid()} starting after epoch {done}")
    started_from, ran = done, []
    for epoch in range(done + 1, total + 1):
        time.sleep(epoch_s)
        state.append(epoch)
        ran.append(epoch)
        ctx.checkpoint(json.dumps(state).encode(), {"epoch": epoch})
        ctx.progress({"epoch": epoch})
        ctx.log(f"epoch {epoch}")
    result = {"started_from": started_from, "epochs_run": ran, "attempt": ctx.attempt}
    result["state"] = state
    with ctx.finish(result) as s:
        s.add(
            AuditEvent(
                action=RESULT_ACTION,
                resource_type="job",
                resource_id=str(ctx.job_id),
                details={"attempt": ctx.attempt, "pid": os.getpid()},
            )
        )


def allocate(ctx: JobContext) -> dict[str, Any]:
    """Allocates (and touches) ``mb`` MB in 16 MB steps, then holds it ``hold_s`` seconds."""
    held = []
    for _ in range(int(ctx.payload["mb"]) // 16):
        held.append(b"\x01" * (16 * MiB))
        time.sleep(0.005)
    time.sleep(float(ctx.payload.get("hold_s", 5.0)))
    return {"held_mb": 16 * len(held)}


def fail(ctx: JobContext) -> None:
    """Raises what ``payload["error"]`` names: ``invalid``, ``transient`` or ``bug``."""
    kind, message = ctx.payload["error"], ctx.payload.get("message", "it went wrong")
    if kind == "invalid":
        raise InvalidInput(message, details={"reason": "numerical_fault", "epoch": 3})
    if kind == "transient":
        raise TransientError(message)
    raise KeyError(message)


def flaky(ctx: JobContext) -> dict[str, Any]:
    """Fails transiently on its first ``fail_attempts`` attempts, then succeeds."""
    if ctx.attempt <= int(ctx.payload["fail_attempts"]):
        raise TransientError(f"flaky attempt {ctx.attempt}")
    return {"attempt": ctx.attempt}


def crash(ctx: JobContext) -> dict[str, Any]:
    """Its process exits with ``code`` (no Python cleanup) on its first attempt."""
    if ctx.attempt == 1:
        os._exit(int(ctx.payload.get("code", 3)))
    return {"attempt": ctx.attempt}


def spawn(ctx: JobContext) -> None:
    """Starts a child process (sleeping) and reports both pids, then waits."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ctx.progress({"pid": os.getpid(), "child_pid": child.pid})
    child.wait()


KINDS = {
    "test.noop": noop,
    "test.imports": imports,
    "test.sleep": sleep,
    "test.epochs": epochs,
    "test.allocate": allocate,
    "test.fail": fail,
    "test.flaky": flaky,
    "test.crash": crash,
    "test.spawn": spawn,
}
for _name, _handler in KINDS.items():
    register_kind(_name, _handler)


# Helpers -----------------------------------------------------------------------------------


def add_job(platform: Platform, kind: str, payload: dict[str, Any] | None = None, **kw: Any) -> int:
    with platform.store.write() as s:
        kw.setdefault("project_id", None)
        kw.setdefault("created_by", None)
        return enqueue(s, kind, payload or {}, **kw).id


def job(platform: Platform, job_id: int) -> Job:
    with platform.store.read() as s:
        row = s.get(Job, job_id)
        assert row is not None
        return row


def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] != b"Z"
    except OSError:
        return False


# The executor contract ----------------------------------------------------------------------


class ExecutorSuite:
    """Every promise of ``Executor``'s docstring, as tests."""

    def _start(
        self,
        platform: Platform,
        executor: Executor,
        kind: str,
        payload: dict[str, Any] | None = None,
        memory_limit_mb: int | None = None,
    ) -> Handle:
        executor.warm_up()
        add_job(platform, kind, payload)
        claim = queue.claim(platform.store, "suite", [kind], lease_s=60)
        assert claim is not None
        return executor.start(claim, handler_ref(kind), memory_limit_mb)

    @staticmethod
    def _wait(executor: Executor, handle: Handle, timeout: float = 20.0) -> Status:
        status: list[Status] = []

        def ended() -> bool:
            status.append(executor.poll(handle))
            return not status[-1].running

        wait_for(ended, timeout)
        return status[-1]

    def test_attempt_records_its_own_outcome(self, platform: Platform, executor: Executor) -> None:
        handle = self._start(platform, executor, "test.noop")
        status = self._wait(executor, handle)
        assert status.exit_code == 0
        assert status.failure is None
        row = job(platform, handle.claim.job_id)
        assert row.state == SUCCEEDED
        assert row.result is not None
        assert row.result["pid"] != os.getpid()  # it ran in another process

    def test_start_returns_before_the_handler_finishes(
        self, platform: Platform, executor: Executor
    ) -> None:
        executor.warm_up()
        t0 = time.monotonic()
        handle = self._start(platform, executor, "test.sleep", {"seconds": 0.5})
        assert time.monotonic() - t0 < 0.4
        assert executor.poll(handle).running
        assert self._wait(executor, handle).exit_code == 0
        assert job(platform, handle.claim.job_id).state == SUCCEEDED

    def test_poll_reports_progress(self, platform: Platform, executor: Executor) -> None:
        handle = self._start(platform, executor, "test.sleep", {"seconds": 30})

        def progress() -> dict[str, Any] | None:
            return executor.poll(handle).progress

        reported = wait_for(progress)
        assert reported["pid"] != os.getpid()
        executor.kill(handle)

    def test_kill_stops_the_attempt_and_what_it_started(
        self, platform: Platform, executor: Executor
    ) -> None:
        handle = self._start(platform, executor, "test.spawn")
        reported = wait_for(lambda: executor.poll(handle).progress)
        executor.kill(handle)
        assert not pid_alive(reported["pid"])
        wait_for(lambda: not pid_alive(reported["child_pid"]), timeout=5)
        status = executor.poll(handle)
        assert not status.running
        assert status.exit_code is not None
        assert status.exit_code < 0  # killed by a signal
        executor.kill(handle)  # killing twice is a no-op

    def test_memory_limit_kills_with_a_clear_failure(
        self, platform: Platform, executor: Executor
    ) -> None:
        handle = self._start(
            platform, executor, "test.allocate", {"mb": 256, "hold_s": 30}, memory_limit_mb=96
        )
        status = self._wait(executor, handle)
        assert status.failure_code == "memory_limit"
        assert status.failure is not None
        assert status.failure.startswith("the job exceeded the memory limit of 96 MB (it used ")
        assert status.exit_code is not None
        assert status.exit_code != 0

    def test_handler_errors_are_recorded_by_the_attempt(
        self, platform: Platform, executor: Executor
    ) -> None:
        handle = self._start(platform, executor, "test.fail", {"error": "invalid"})
        assert self._wait(executor, handle).exit_code == 0
        row = job(platform, handle.claim.job_id)
        assert (row.state, row.error, row.error_code) == (FAILED, "it went wrong", "invalid_input")
