"""Real worker processes: killed or frozen mid-job, the job still finishes exactly once."""

from __future__ import annotations

import os
import signal
import time

from sqlalchemy import select

from openmaas.domain.context import Platform
from openmaas.domain.jobs import RUNNING, SUCCEEDED
from openmaas.store.metadata.tables import AuditEvent, JobLog
from openmaas.testing.jobs import RESULT_ACTION, add_job, job, pid_alive, wait_for
from tests.jobs.conftest import WorkerProcesses, session_pids

EPOCHS, EPOCH_S = 8, 0.12


def result_rows(platform: Platform, job_id: int) -> list[dict[str, object]]:
    with platform.store.read() as s:
        q = select(AuditEvent.details).where(
            AuditEvent.action == RESULT_ACTION, AuditEvent.resource_id == str(job_id)
        )
        return list(s.scalars(q))


def attempt_pid(platform: Platform, job_id: int, attempt: int) -> int:
    """The pid an attempt of ``test.epochs`` logged when it started."""

    def logged() -> str | None:
        with platform.store.read() as s:
            return s.scalar(
                select(JobLog.message).where(
                    JobLog.job_id == job_id,
                    JobLog.attempt == attempt,
                    JobLog.message.startswith("pid "),
                )
            )

    return int(wait_for(logged).split()[1])


def log_ids(platform: Platform, job_id: int, attempt: int) -> list[int]:
    with platform.store.read() as s:
        q = select(JobLog.id).where(JobLog.job_id == job_id, JobLog.attempt == attempt)
        return list(s.scalars(q.order_by(JobLog.id)))


def test_sigkilled_worker_job_resumes_elsewhere_from_its_checkpoint(
    platform: Platform, workers: WorkerProcesses
) -> None:
    job_id = add_job(platform, "test.epochs", {"epochs": EPOCHS, "epoch_s": EPOCH_S})
    a = workers.start("worker-a")
    wait_for(lambda: job(platform, job_id).state == RUNNING)
    workers.start("worker-b")  # starts up meanwhile; the job is worker-a's
    wait_for(lambda: job(platform, job_id).checkpoint.get("epoch", 0) >= 3)
    child = attempt_pid(platform, job_id, 1)
    a.send_signal(signal.SIGKILL)
    a.wait(10)
    # The attempt notices its worker is gone and stops by itself, as does the forkserver.
    wait_for(lambda: not pid_alive(child), timeout=5)
    wait_for(lambda: not session_pids(a.pid), timeout=5)
    reached = job(platform, job_id).checkpoint["epoch"]
    assert reached >= 3

    wait_for(lambda: job(platform, job_id).state == SUCCEEDED, timeout=30)
    row = job(platform, job_id)
    assert (row.attempt, row.worker_id) == (2, "worker-b")
    assert row.result is not None
    assert row.result["attempt"] == 2
    assert row.result["started_from"] == reached  # resumed, not restarted from 0
    assert row.result["epochs_run"] == list(range(reached + 1, EPOCHS + 1))
    assert row.result["state"] == list(range(1, EPOCHS + 1))
    assert [r["attempt"] for r in result_rows(platform, job_id)] == [2]  # finished once


def test_a_frozen_worker_cannot_write_results_after_it_thaws(
    platform: Platform, workers: WorkerProcesses
) -> None:
    job_id = add_job(platform, "test.epochs", {"epochs": EPOCHS, "epoch_s": EPOCH_S})
    a = workers.start("worker-a")
    wait_for(lambda: job(platform, job_id).state == RUNNING)
    b = workers.start("worker-b")
    wait_for(lambda: job(platform, job_id).checkpoint.get("epoch", 0) >= 1)
    child = attempt_pid(platform, job_id, 1)

    workers.signal_all(a, signal.SIGSTOP)  # the worker, its forkserver and the attempt
    frozen_at = time.monotonic()
    wait_for(lambda: job(platform, job_id).state == SUCCEEDED, timeout=30)
    assert time.monotonic() - frozen_at > 1.5  # it waited for worker-a's lease to expire
    done = job(platform, job_id)
    assert done.result is not None
    assert (done.attempt, done.worker_id, done.result["attempt"]) == (2, "worker-b", 2)

    workers.signal_all(a, signal.SIGCONT)
    wait_for(lambda: not pid_alive(child), timeout=5)  # killed, or stopped at its next write
    time.sleep(3 * 0.25)  # a few heartbeats of worker-a after thawing
    assert a.poll() is None  # worker-a lives on
    row = job(platform, job_id)
    assert (row.state, row.attempt, row.worker_id, row.result, row.finished_at) == (
        SUCCEEDED,
        2,
        "worker-b",
        done.result,
        done.finished_at,
    )
    assert [r["attempt"] for r in result_rows(platform, job_id)] == [2]
    # Nothing of attempt 1 was written after attempt 2 began.
    assert max(log_ids(platform, job_id, 1)) < min(log_ids(platform, job_id, 2))

    # worker-a still does work: with worker-b gone, it runs the next job.
    b.send_signal(signal.SIGTERM)
    assert b.wait(10) == 0
    after = add_job(platform, "test.noop")
    wait_for(lambda: job(platform, after).state == SUCCEEDED, timeout=15)
    assert job(platform, after).worker_id == "worker-a"
    assert (job(platform, after).result or {}).get("pid") not in (None, os.getpid())
