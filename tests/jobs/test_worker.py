"""The worker loop in-process, running real attempts through the local executor."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import select

from openmaas.domain.context import Platform
from openmaas.domain.jobs import CANCELLED, FAILED, QUEUED, SUCCEEDED, request_cancel
from openmaas.errors import InvalidInput
from openmaas.jobs.executors.local import LocalExecutor
from openmaas.jobs.kinds import handler_ref
from openmaas.jobs.queue import claim
from openmaas.jobs.worker import Worker, describe_exit
from openmaas.store.metadata.tables import JobLog
from openmaas.testing.jobs import add_job, job, pid_alive, wait_for


def messages(platform: Platform, job_id: int) -> list[str]:
    with platform.store.read() as s:
        q = select(JobLog.message).where(JobLog.job_id == job_id).order_by(JobLog.id)
        return list(s.scalars(q))


@contextmanager
def in_background(worker: Worker) -> Iterator[Worker]:
    """Run ``worker`` in a thread until the block ends."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run_until_idle(timeout=60)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    try:
        yield worker
    finally:
        worker.stop()
        worker.stop()
        t.join(30)
    assert not errors, errors


def test_invalid_input_fails_without_retry_and_the_worker_lives_on(
    platform: Platform, make_worker: Callable[..., Worker]
) -> None:
    bad = add_job(platform, "test.fail", {"error": "invalid", "message": "training diverged"})
    good = add_job(platform, "test.noop")
    assert make_worker().run_until_idle() == 2
    row = job(platform, bad)
    assert (row.state, row.attempt, row.error, row.error_code) == (
        FAILED,
        1,
        "training diverged",
        "invalid_input",
    )
    assert row.result == {"details": {"reason": "numerical_fault", "epoch": 3}}
    assert messages(platform, bad)[-1] == "failed: training diverged"
    assert job(platform, good).state == SUCCEEDED


def test_transient_errors_retry_with_backoff(
    platform: Platform, make_worker: Callable[..., Worker]
) -> None:
    job_id = add_job(platform, "test.flaky", {"fail_attempts": 2})
    t0 = time.monotonic()
    assert make_worker().run_until_idle() == 3
    assert time.monotonic() - t0 >= 0.1 + 0.2  # the backoff doubles from 0.1 s
    row = job(platform, job_id)
    assert (row.state, row.attempt, row.result, row.error) == (SUCCEEDED, 3, {"attempt": 3}, None)
    log = messages(platform, job_id)
    assert "attempt 1 failed: TransientError: flaky attempt 1; retrying in 0.1 s" in log
    assert "attempt 2 failed: TransientError: flaky attempt 2; retrying in 0.2 s" in log


def test_unexpected_errors_retry_until_attempts_run_out(
    platform: Platform, make_worker: Callable[..., Worker]
) -> None:
    job_id = add_job(platform, "test.fail", {"error": "bug", "message": "x"}, max_attempts=2)
    assert make_worker().run_until_idle() == 2
    row = job(platform, job_id)
    assert (row.state, row.attempt, row.error, row.error_code) == (
        FAILED,
        2,
        "KeyError: 'x'",
        "internal_error",
    )
    assert any(m.startswith("Traceback") for m in messages(platform, job_id))


def test_a_dead_attempt_is_retried(platform: Platform, make_worker: Callable[..., Worker]) -> None:
    job_id = add_job(platform, "test.crash", {"code": 3})
    assert make_worker().run_until_idle() == 2
    row = job(platform, job_id)
    assert (row.state, row.attempt, row.result) == (SUCCEEDED, 2, {"attempt": 2})
    assert "attempt 1 failed: the job process died (exit code 3); retrying in 0.1 s" in messages(
        platform, job_id
    )


def test_memory_limit_fails_the_job_cleanly(
    platform: Platform, make_worker: Callable[..., Worker]
) -> None:
    hog = add_job(platform, "test.allocate", {"mb": 400, "hold_s": 30})
    after = add_job(platform, "test.noop")
    assert make_worker(memory_limit_mb=128).run_until_idle() == 2
    row = job(platform, hog)
    assert (row.state, row.attempt, row.error_code) == (FAILED, 1, "memory_limit")
    assert row.error is not None
    assert row.error.startswith("the job exceeded the memory limit of 128 MB (it used ")
    assert job(platform, after).state == SUCCEEDED  # the worker lives on


def test_cancelling_a_queued_job_means_it_never_runs(
    platform: Platform, make_worker: Callable[..., Worker]
) -> None:
    job_id = add_job(platform, "test.noop")
    with platform.store.write() as s:
        assert request_cancel(s, job_id)
    assert make_worker().run_until_idle() == 0
    assert job(platform, job_id).state == CANCELLED


def test_cancelling_a_running_job_kills_it(
    platform: Platform, make_worker: Callable[..., Worker]
) -> None:
    job_id = add_job(platform, "test.sleep", {"seconds": 60})
    with in_background(make_worker()):
        wait_for(lambda: job(platform, job_id).progress.get("pid"))
        pid = job(platform, job_id).progress["pid"]
        t0 = time.monotonic()
        with platform.store.write() as s:
            assert request_cancel(s, job_id)
        wait_for(lambda: job(platform, job_id).state == CANCELLED, timeout=10)
        assert time.monotonic() - t0 < 2.0
        assert not pid_alive(pid)
    row = job(platform, job_id)
    assert (row.error, row.error_code, row.attempt) == ("cancelled while running", "cancelled", 1)


def test_shutdown_releases_running_jobs(
    platform: Platform, make_worker: Callable[..., Worker]
) -> None:
    job_id = add_job(platform, "test.sleep", {"seconds": 60}, max_attempts=1)
    worker = make_worker()
    with in_background(worker):
        wait_for(lambda: job(platform, job_id).progress.get("pid"))
        pid = job(platform, job_id).progress["pid"]
    assert not pid_alive(pid)
    row = job(platform, job_id)
    assert (row.state, row.attempt, row.max_attempts, row.attempt_id) == (QUEUED, 1, 2, None)
    assert messages(platform, job_id)[-1] == "attempt 1 released: its worker shut down"


def test_progress_and_memory_reach_the_job_row(
    platform: Platform, make_worker: Callable[..., Worker]
) -> None:
    job_id = add_job(platform, "test.epochs", {"epochs": 4, "epoch_s": 0.15})
    assert make_worker().run_until_idle() == 1
    row = job(platform, job_id)
    assert row.state == SUCCEEDED
    assert row.checkpoint == {"epoch": 4}
    assert row.checkpoint_digest is None  # dropped on success
    assert row.progress["epoch"] >= 1
    assert row.progress["peak_memory_mb"] > 0


def test_new_progress_reaches_the_job_row_within_a_second_between_heartbeats(
    platform: Platform, make_worker: Callable[..., Worker]
) -> None:
    """Those who follow a job (``run create --wait``) see it move about once a second,
    though heartbeats come every 5 s."""
    job_id = add_job(platform, "test.epochs", {"epochs": 12, "epoch_s": 0.25})
    with in_background(make_worker(lease_s=30, heartbeat_s=5)):
        wait_for(lambda: (job(platform, job_id).progress or {}).get("epoch", 0) >= 1, timeout=10)
        first = job(platform, job_id).progress["epoch"]
        wait_for(lambda: job(platform, job_id).progress["epoch"] >= first + 2, timeout=2.5)


def test_worker_settings_are_checked(platform: Platform, executor: LocalExecutor) -> None:
    with pytest.raises(InvalidInput, match=r"heartbeat_s \(20\) must be positive and at most half"):
        Worker(platform, kinds=["test.noop"], lease_s=30, heartbeat_s=20, executor=executor)
    with pytest.raises(LookupError, match="unknown job kind 'nope'; registered kinds: "):
        Worker(platform, kinds=["nope"], executor=executor)


def test_describe_exit() -> None:
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(3) == "exit code 3"


def test_a_tiny_job_starts_fast(platform: Platform, executor: LocalExecutor) -> None:
    """Start-up latency of a no-op attempt from a warm forkserver (printed with -s)."""
    executor.warm_up()
    latencies, totals = [], []
    for _ in range(5):
        add_job(platform, "test.noop")
        c = claim(platform.store, "w", ["test.noop"], 30)
        assert c is not None
        t0 = time.time()
        handle = executor.start(c, handler_ref("test.noop"))
        wait_for(lambda h=handle: not executor.poll(h).running, interval=0.002)
        totals.append(time.time() - t0)
        row = job(platform, c.job_id)
        assert row.state == SUCCEEDED
        assert row.result is not None
        latencies.append(row.result["t"] - t0)
    best = sorted(latencies)[len(latencies) // 2]
    print(
        f"\nno-op job: handler starts {best * 1000:.0f} ms after start() (median), "
        f"done and recorded in {sorted(totals)[2] * 1000:.0f} ms"
    )
    assert best < 0.5


def test_concurrency_runs_attempts_side_by_side(
    platform: Platform, make_worker: Callable[..., Worker]
) -> None:
    ids = [add_job(platform, "test.sleep", {"seconds": 0.4}) for _ in range(2)]
    assert make_worker(concurrency=2).run_until_idle() == 2
    rows = [job(platform, i) for i in ids]
    assert all(r.state == SUCCEEDED for r in rows)
    starts = [r.started_at for r in rows if r.started_at is not None]
    ends = [r.finished_at for r in rows if r.finished_at is not None]
    assert max(starts) < min(ends)  # both ran at once
