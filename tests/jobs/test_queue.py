"""The queue's state machine: claims, leases, the reaper, fencing, retries, cancellation."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from openmaas.domain.context import Platform
from openmaas.domain.jobs import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    enqueue,
    now,
    request_cancel,
)
from openmaas.errors import InvalidInput
from openmaas.jobs import queue
from openmaas.jobs.executors.local import LocalExecutor
from openmaas.jobs.queue import Claim, StaleAttempt
from openmaas.store.metadata.sql import MetadataStore
from openmaas.store.metadata.tables import AuditEvent, Job, JobLog
from openmaas.testing.jobs import add_job, job

DIGEST = hashlib.sha256(b"checkpoint").hexdigest()


def claim(platform: Platform, kinds: tuple[str, ...] = ("k",), **kw: object) -> Claim:
    c = queue.claim(platform.store, "w1", list(kinds), kw.pop("lease_s", 30), **kw)  # type: ignore[arg-type]
    assert c is not None
    return c


def logs(platform: Platform, job_id: int) -> list[str]:
    with platform.store.read() as s:
        q = select(JobLog.message).where(JobLog.job_id == job_id).order_by(JobLog.id)
        return list(s.scalars(q))


def test_enqueue_checks_its_input(platform: Platform) -> None:
    with (
        platform.store.write() as s,
        pytest.raises(InvalidInput, match=r"job kind must be 1 to 32 characters, got ''"),
    ):
        enqueue(s, "", {}, project_id=None, created_by=None)
    with (
        platform.store.write() as s,
        pytest.raises(InvalidInput, match="job payload is not JSON"),
    ):
        enqueue(s, "k", {"x": object()}, project_id=None, created_by=None)
    with (
        platform.store.write() as s,
        pytest.raises(InvalidInput, match="max_attempts must be at least 1, got 0"),
    ):
        enqueue(s, "k", {}, project_id=None, created_by=None, max_attempts=0)


def test_claim_takes_priority_then_age_and_sets_the_attempt(platform: Platform) -> None:
    first = add_job(platform, "k", {"n": 1})
    urgent = add_job(platform, "k", {"n": 2}, priority=5)
    add_job(platform, "other")
    c = claim(platform)
    assert (c.job_id, c.kind, c.attempt, c.payload) == (urgent, "k", 1, {"n": 2})
    assert len(c.attempt_id) == 32
    row = job(platform, urgent)
    assert (row.state, row.attempt, row.attempt_id, row.worker_id) == (
        RUNNING,
        1,
        c.attempt_id,
        "w1",
    )
    assert row.lease_expires_at is not None and row.started_at is not None
    assert row.lease_expires_at - row.started_at == timedelta(seconds=30)
    assert claim(platform).job_id == first
    assert queue.claim(platform.store, "w1", ["k"], 30) is None  # "other" is not ours
    assert logs(platform, urgent) == ["attempt 1 on w1"]


def test_claim_waits_for_not_before(platform: Platform) -> None:
    later = now() + timedelta(seconds=60)
    job_id = add_job(platform, "k", not_before=later)
    assert queue.claim(platform.store, "w1", ["k"], 30) is None
    assert claim(platform, at=later + timedelta(seconds=1)).job_id == job_id


def test_claim_needs_kinds(platform: Platform) -> None:
    with pytest.raises(ValueError, match="claim needs at least one job kind"):
        queue.claim(platform.store, "w1", [], 30)


def test_heartbeat_extends_the_lease_and_records_progress(platform: Platform) -> None:
    job_id = add_job(platform, "k")
    c = claim(platform, lease_s=10)
    later = now() + timedelta(seconds=5)
    beat = queue.heartbeat(platform.store, c, {"epoch": 2}, at=later)
    assert beat == queue.HeartbeatResult(alive=True, cancel_requested=False)
    row = job(platform, job_id)
    assert row.lease_expires_at == later + timedelta(seconds=10)
    assert row.heartbeat_at == later
    assert row.progress == {"epoch": 2}
    assert queue.heartbeat(platform.store, c).alive
    assert job(platform, job_id).progress == {"epoch": 2}  # kept when none is given


def test_reaper_requeues_expired_leases_and_keeps_the_checkpoint(platform: Platform) -> None:
    job_id = add_job(platform, "k")
    stale = claim(platform, lease_s=1)
    assert queue.save_checkpoint(platform.store, stale, DIGEST, {"epoch": 3})
    assert queue.reap(platform.store) == []  # not expired yet
    assert queue.reap(platform.store, at=now() + timedelta(seconds=2)) == [(job_id, QUEUED)]
    row = job(platform, job_id)
    assert (row.state, row.attempt_id, row.worker_id, row.error_code) == (
        QUEUED,
        None,
        None,
        "worker_lost",
    )
    assert row.error is not None and row.error.startswith("worker w1 stopped sending heartbeats")
    fresh = claim(platform)
    assert (fresh.attempt, fresh.checkpoint_digest, fresh.checkpoint) == (
        2,
        DIGEST,
        {"epoch": 3},
    )
    assert fresh.attempt_id != stale.attempt_id
    assert logs(platform, job_id)[-1] == "attempt 2 on w1, resuming from checkpoint {'epoch': 3}"


def test_reaper_gives_up_after_max_attempts(platform: Platform) -> None:
    job_id = add_job(platform, "k", max_attempts=1)
    claim(platform, lease_s=1)
    assert queue.reap(platform.store, at=now() + timedelta(seconds=2)) == [(job_id, FAILED)]
    row = job(platform, job_id)
    assert row.state == FAILED
    assert row.error_code == "worker_lost"
    assert row.error is not None and row.error.endswith("; gave up after 1 attempts")
    assert row.finished_at is not None


def test_reaper_cancels_what_was_asked_to_stop(platform: Platform) -> None:
    job_id = add_job(platform, "k")
    claim(platform, lease_s=1)
    with platform.store.write() as s:
        assert request_cancel(s, job_id)
    assert queue.reap(platform.store, at=now() + timedelta(seconds=2)) == [(job_id, CANCELLED)]


def test_a_stale_attempt_cannot_write(platform: Platform) -> None:
    job_id = add_job(platform, "k")
    stale = claim(platform, lease_s=1)
    queue.reap(platform.store, at=now() + timedelta(seconds=2))
    live = claim(platform)

    assert queue.heartbeat(platform.store, stale) == queue.HeartbeatResult(alive=False)
    assert not queue.save_checkpoint(platform.store, stale, DIGEST, {"epoch": 9})
    assert not queue.log(platform.store, stale, "from the past")
    stale_error = rf"attempt 1 \({stale.attempt_id}\) of job {job_id} is stale: the job was"
    with pytest.raises(StaleAttempt, match=stale_error), platform.store.write() as s:
        s.add(AuditEvent(action="result", resource_type="job", resource_id=str(job_id)))
        queue.finish(s, stale, SUCCEEDED, {"from": "stale"})
    with pytest.raises(StaleAttempt, match="is stale"), platform.store.write() as s:
        queue.hold(s, stale)
    with pytest.raises(StaleAttempt, match="is stale"), platform.store.write() as s:
        queue.fail_or_retry(s, stale, "boom")
    assert not queue.transition(platform.store, queue.release, stale)

    with platform.store.read() as s:  # the stale result write rolled back
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == 0
    row = job(platform, job_id)
    assert (row.state, row.attempt_id, row.checkpoint_digest) == (RUNNING, live.attempt_id, None)
    assert "from the past" not in logs(platform, job_id)

    assert queue.heartbeat(platform.store, live).alive
    with platform.store.write() as s:
        queue.hold(s, live)
        queue.finish(s, live, SUCCEEDED, {"from": "live"})
    row = job(platform, job_id)
    assert (row.state, row.result) == (SUCCEEDED, {"from": "live"})
    with (
        pytest.raises(StaleAttempt, match="is stale"),
        platform.store.write() as s,
    ):  # finished: fenced too
        queue.finish(s, live, FAILED)


def test_finish_needs_a_terminal_state(platform: Platform) -> None:
    add_job(platform, "k")
    c = claim(platform)
    with (
        pytest.raises(ValueError, match="finish needs a terminal state, not 'queued'"),
        platform.store.write() as s,
    ):
        queue.finish(s, c, QUEUED)


def test_fail_or_retry_backs_off_then_fails(platform: Platform) -> None:
    job_id = add_job(platform, "k", max_attempts=2)
    first = claim(platform)
    at = now()
    with platform.store.write() as s:
        state = queue.fail_or_retry(s, first, "Timeout: slow", "transient", backoff_s=4, at=at)
    assert state == QUEUED
    row = job(platform, job_id)
    assert row.not_before == at + timedelta(seconds=4)
    assert (row.error, row.error_code, row.attempt_id) == ("Timeout: slow", "transient", None)
    assert logs(platform, job_id)[-1] == "attempt 1 failed: Timeout: slow; retrying in 4 s"
    assert queue.claim(platform.store, "w1", ["k"], 30) is None  # backing off
    second = claim(platform, at=at + timedelta(seconds=5))
    with platform.store.write() as s:
        state = queue.fail_or_retry(s, second, "Timeout: again", "transient", details={"a": 1})
    assert state == FAILED
    row = job(platform, job_id)
    assert (row.state, row.error, row.result) == (FAILED, "Timeout: again", {"details": {"a": 1}})


def test_no_retry_means_failed_at_once(platform: Platform) -> None:
    job_id = add_job(platform, "k")
    c = claim(platform)
    with platform.store.write() as s:
        assert queue.fail_or_retry(s, c, "bad input", "invalid_input", retry=False) == FAILED
    assert job(platform, job_id).attempt == 1


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [queue.backoff_delay(n, 10, 60) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 60, 60]


def test_cancel_queued_running_and_finished(platform: Platform) -> None:
    queued = add_job(platform, "k")
    with platform.store.write() as s:
        assert request_cancel(s, queued)
        assert not request_cancel(s, queued)  # already cancelled
        assert not request_cancel(s, 12345)  # no such job
    row = job(platform, queued)
    assert (row.state, row.error_code) == (CANCELLED, "cancelled")
    assert queue.claim(platform.store, "w1", ["k"], 30) is None

    running = add_job(platform, "k")
    c = claim(platform)
    with platform.store.write() as s:
        assert request_cancel(s, running)
        assert not request_cancel(s, running)  # already asked
    assert queue.heartbeat(platform.store, c) == queue.HeartbeatResult(True, cancel_requested=True)
    with platform.store.write() as s:  # a failed attempt of a job asked to stop: cancelled
        assert queue.fail_or_retry(s, c, "killed") == CANCELLED
    assert job(platform, running).state == CANCELLED


def test_release_requeues_without_spending_an_attempt(platform: Platform) -> None:
    job_id = add_job(platform, "k", max_attempts=1)
    c = claim(platform)
    assert queue.save_checkpoint(platform.store, c, DIGEST, {"epoch": 1})
    assert queue.transition(platform.store, queue.release, c)
    row = job(platform, job_id)
    assert (row.state, row.attempt, row.max_attempts, row.checkpoint_digest) == (
        QUEUED,
        1,
        2,
        DIGEST,
    )
    assert claim(platform).attempt == 2


def test_log_levels_are_checked(platform: Platform) -> None:
    add_job(platform, "k")
    c = claim(platform)
    assert queue.log(platform.store, c, "hello", "warning")
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        queue.log(platform.store, c, "hello", "loud")


# Exactly-once claims under concurrency -------------------------------------------------------

JOBS, CLAIMERS = 80, 4


def _claim_all(url: str, worker: str, out: mp.Queue) -> None:  # type: ignore[type-arg]
    store = MetadataStore(url, busy_timeout_s=60)
    got = []
    while (c := queue.claim(store, worker, ["k"], 30)) is not None:
        got.append(c.job_id)
    store.dispose()
    out.put(got)


def test_each_job_is_claimed_by_exactly_one_process(
    platform: Platform, executor: LocalExecutor
) -> None:
    with platform.store.write() as s:
        ids = {enqueue(s, "k", {}, project_id=None, created_by=None).id for _ in range(JOBS)}
    executor.warm_up()  # claimers fork from its forkserver, which has openmaas imported
    ctx = mp.get_context("forkserver")
    out = ctx.Queue()
    url = platform.settings.resolved_database_url
    procs = [ctx.Process(target=_claim_all, args=(url, f"w{i}", out)) for i in range(CLAIMERS)]
    for p in procs:
        p.start()
    claimed = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    flat = [i for got in claimed for i in got]
    assert sorted(flat) == sorted(ids)  # every job once, none twice
    assert sum(1 for got in claimed if got) >= 2  # they really competed
    with platform.store.read() as s:
        assert s.scalar(select(func.count()).where(Job.state == RUNNING)) == JOBS
        assert s.scalar(select(func.count()).where(Job.attempt != 1)) == 0
