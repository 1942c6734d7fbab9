"""The job queue: the worker side of the ``jobs`` state machine, fenced by attempt.

States and the user-side transitions (enqueue, cancel) are in
``openmaas.domain.jobs``; they are re-exported here. Every transition is a
conditional UPDATE and reports whether this caller won it.

Fencing rules
    * ``claim`` moves one claimable job (``queued``, ``not_before`` passed, a
      kind the worker serves; highest priority, then oldest) to ``running``
      with a fresh random ``attempt_id``, ``attempt + 1`` and a lease. On
      PostgreSQL the candidate row is picked ``FOR UPDATE SKIP LOCKED``; on
      SQLite the write transaction is ``BEGIN IMMEDIATE``, so claims queue up.
      Either way the UPDATE re-checks ``state = 'queued'``: a job is claimed
      by exactly one worker.
    * Every later write of an attempt (``heartbeat``, ``save_checkpoint``,
      ``log``, ``finish``, ``fail_or_retry``, ``release``, and ``hold``, which
      locks the row for a handler's result transaction) matches
      ``id AND attempt_id AND state = 'running'``. No row means the attempt is
      stale: its job was reaped and re-queued, claimed again, cancelled or
      finished. Stale attempts never write anything; session-level
      transitions raise :class:`StaleAttempt` so the caller's transaction,
      with whatever results it wrote, rolls back.
    * ``reap`` re-queues running jobs whose lease expired (or fails them once
      ``attempt >= max_attempts``, or cancels them if cancellation was asked),
      each conditional on the attempt id it saw, so a heartbeat that lands
      first wins. Checkpoint columns are kept: the next attempt resumes.
    * Logs of stale attempts are dropped (``log`` returns ``False``): what a
      superseded attempt printed would read as the live attempt's output.
    * ``owns`` asks the same fence question with a read (no write lock).

Times are the writing process's UTC clock; keep hosts' clocks (NTP) within a
small fraction of the lease.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from openmaas.domain.jobs import (
    CANCELLED,
    FAILED,
    LOG_LEVELS,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    TERMINAL,
    enqueue,
    now,
    request_cancel,
)
from openmaas.store.artifacts.base import validate_digest
from openmaas.store.metadata.sql import MetadataStore
from openmaas.store.metadata.tables import Job, JobLog

__all__ = [
    "Claim",
    "HeartbeatResult",
    "StaleAttempt",
    "backoff_delay",
    "claim",
    "enqueue",
    "fail_or_retry",
    "finish",
    "heartbeat",
    "hold",
    "log",
    "owns",
    "reap",
    "release",
    "request_cancel",
    "save_checkpoint",
    "transition",
]

P = ParamSpec("P")


class StaleAttempt(Exception):
    """This attempt no longer owns its job; whatever it was writing must not commit."""

    def __init__(self, claim: Claim) -> None:
        super().__init__(
            f"attempt {claim.attempt} ({claim.attempt_id}) of job {claim.job_id} is stale: "
            "the job was re-queued, claimed by another worker, cancelled or finished"
        )
        self.claim = claim


@dataclass(frozen=True)
class Claim:
    """One attempt at one job, as claimed: everything the attempt needs to run."""

    job_id: int
    kind: str
    attempt: int
    attempt_id: str
    worker_id: str
    lease_s: float
    max_attempts: int
    project_id: int | None = None
    created_by: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    checkpoint_digest: str | None = None
    checkpoint: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HeartbeatResult:
    alive: bool  # False: the attempt is stale; stop it and drop its results
    cancel_requested: bool = False


def _fence(claim: Claim) -> list[ColumnElement[bool]]:
    return [Job.id == claim.job_id, Job.attempt_id == claim.attempt_id, Job.state == RUNNING]


def _update(session: Session, conds: Iterable[ColumnElement[bool]], **values: Any) -> bool:
    result = session.execute(
        update(Job).where(*conds).values(**values).execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _log_row(session: Session, job_id: int, attempt: int, message: str, level: str) -> None:
    session.add(JobLog(job_id=job_id, attempt=attempt, level=level, message=message, at=now()))


# Claiming ----------------------------------------------------------------------------


def claim(
    store: MetadataStore,
    worker_id: str,
    kinds: Iterable[str],
    lease_s: float,
    *,
    at: datetime | None = None,
) -> Claim | None:
    """Claim the next job of ``kinds`` for ``worker_id``, or ``None`` if there is none."""
    kinds = list(kinds)
    if not kinds:
        raise ValueError("claim needs at least one job kind")
    at = at or now()
    claimable = (
        Job.state == QUEUED,
        Job.kind.in_(kinds),
        or_(Job.not_before.is_(None), Job.not_before <= at),
    )
    with store.read() as s:  # cheap probe: no write lock while the queue is empty
        if s.scalar(select(Job.id).where(*claimable).limit(1)) is None:
            return None
    pick = select(Job.id).where(*claimable).order_by(Job.priority.desc(), Job.id).limit(1)
    if store.dialect == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    attempt_id = uuid.uuid4().hex
    stmt = (
        update(Job)
        .where(Job.id == pick.scalar_subquery(), Job.state == QUEUED)
        .values(
            state=RUNNING,
            attempt=Job.attempt + 1,
            attempt_id=attempt_id,
            worker_id=worker_id,
            started_at=at,
            heartbeat_at=at,
            lease_expires_at=at + timedelta(seconds=lease_s),
            not_before=None,
        )
        .returning(
            Job.id,
            Job.kind,
            Job.attempt,
            Job.max_attempts,
            Job.project_id,
            Job.created_by,
            Job.payload,
            Job.checkpoint_digest,
            Job.checkpoint,
        )
        .execution_options(synchronize_session=False)
    )
    with store.write() as s:
        row = s.execute(stmt).one_or_none()
        if row is None:
            return None
        resume = f", resuming from checkpoint {row.checkpoint}" if row.checkpoint_digest else ""
        _log_row(s, row.id, row.attempt, f"attempt {row.attempt} on {worker_id}{resume}", "info")
    return Claim(
        job_id=row.id,
        kind=row.kind,
        attempt=row.attempt,
        attempt_id=attempt_id,
        worker_id=worker_id,
        lease_s=lease_s,
        max_attempts=row.max_attempts,
        project_id=row.project_id,
        created_by=row.created_by,
        payload=dict(row.payload or {}),
        checkpoint_digest=row.checkpoint_digest,
        checkpoint=dict(row.checkpoint or {}),
    )


# Writes of a live attempt --------------------------------------------------------------


def heartbeat(
    store: MetadataStore,
    claim: Claim,
    progress: dict[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> HeartbeatResult:
    """Extend the lease by ``claim.lease_s`` (and record ``progress`` if given)."""
    at = at or now()
    values: dict[str, Any] = {
        "heartbeat_at": at,
        "lease_expires_at": at + timedelta(seconds=claim.lease_s),
    }
    if progress is not None:
        values["progress"] = progress
    with store.write() as s:
        row = s.execute(
            update(Job)
            .where(*_fence(claim))
            .values(**values)
            .returning(Job.cancel_requested)
            .execution_options(synchronize_session=False)
        ).one_or_none()
    if row is None:
        return HeartbeatResult(alive=False)
    return HeartbeatResult(alive=True, cancel_requested=bool(row[0]))


def owns(store: MetadataStore, claim: Claim) -> bool:
    """Whether the attempt still owns its running job (a read: takes no write lock)."""
    with store.read() as s:
        return s.scalar(select(Job.id).where(*_fence(claim))) is not None


def save_checkpoint(store: MetadataStore, claim: Claim, digest: str, meta: dict[str, Any]) -> bool:
    """Record the blob ``digest`` as the job's checkpoint; ``False`` if the attempt is stale."""
    validate_digest(digest)
    with store.write() as s:
        return _update(s, _fence(claim), checkpoint_digest=digest, checkpoint=meta)


def hold(session: Session, claim: Claim) -> None:
    """Lock the job row for this attempt's transaction, or raise ``StaleAttempt``.

    Taken first in a handler's result transaction, it fails fast when the
    attempt is stale and orders locks the same way everywhere (job row first).
    """
    q = select(Job.id).where(*_fence(claim))
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    if session.scalar(q) is None:
        raise StaleAttempt(claim)


def log(store: MetadataStore, claim: Claim, message: str, level: str = "info") -> bool:
    """Append a line to the job's log; dropped (``False``) if the attempt is stale."""
    if level not in LOG_LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LOG_LEVELS)}")
    with store.write() as s:
        q = select(Job.id).where(*_fence(claim))
        if store.dialect == "postgresql":
            q = q.with_for_update(read=True)
        if s.scalar(q) is None:
            return False
        _log_row(s, claim.job_id, claim.attempt, message, level)
    return True


# Ending an attempt (inside the caller's transaction) ------------------------------------


def finish(
    session: Session,
    claim: Claim,
    state: str,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    error_code: str | None = None,
    *,
    at: datetime | None = None,
) -> None:
    """End the job in terminal ``state``, in the caller's transaction.

    Raises ``StaleAttempt`` if the attempt no longer owns the job, so the
    caller's transaction rolls back with every result it wrote. A succeeded
    job drops its checkpoint reference (the blob goes at the next gc).
    """
    if state not in TERMINAL:
        raise ValueError(f"finish needs a terminal state, not {state!r}")
    values: dict[str, Any] = {
        "state": state,
        "finished_at": at or now(),
        "lease_expires_at": None,
        "result": result,
        "error": error,
        "error_code": error_code,
    }
    if state == SUCCEEDED:
        values["checkpoint_digest"] = None
    if not _update(session, _fence(claim), **values):
        raise StaleAttempt(claim)
    if state != SUCCEEDED:
        level = "warning" if state == CANCELLED else "error"
        _log_row(session, claim.job_id, claim.attempt, f"{state}: {error or ''}".strip(), level)


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Seconds before retrying after failed attempt ``attempt`` (1-based): doubling, capped."""
    return float(min(max_s, base_s * 2 ** max(0, attempt - 1)))


def _requeue(
    session: Session,
    claim: Claim,
    *,
    at: datetime,
    not_before: datetime | None,
    error: str | None,
    error_code: str | None,
    message: str,
    **extra: Any,
) -> str:
    """Back to ``queued`` (checkpoint kept), or ``cancelled`` if that was asked."""
    requeued = _update(
        session,
        [*_fence(claim), Job.cancel_requested.is_(False)],
        state=QUEUED,
        attempt_id=None,
        worker_id=None,
        lease_expires_at=None,
        not_before=not_before,
        error=error,
        error_code=error_code,
        **extra,
    )
    if requeued:
        _log_row(session, claim.job_id, claim.attempt, message, "warning")
        return QUEUED
    finish(session, claim, CANCELLED, error="cancelled by request", error_code="cancelled", at=at)
    return CANCELLED


def fail_or_retry(
    session: Session,
    claim: Claim,
    error: str,
    error_code: str = "internal_error",
    *,
    retry: bool = True,
    backoff_s: float = 10.0,
    max_backoff_s: float = 600.0,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> str:
    """Record a failed attempt: re-queue it after a backoff, or fail the job.

    Retries while ``retry`` and attempts remain; a job whose cancellation was
    requested is cancelled instead. Returns the job's new state; raises
    ``StaleAttempt`` if the attempt no longer owns the job.
    """
    at = at or now()
    if retry and claim.attempt < claim.max_attempts:
        delay = backoff_delay(claim.attempt, backoff_s, max_backoff_s)
        return _requeue(
            session,
            claim,
            at=at,
            not_before=at + timedelta(seconds=delay),
            error=error,
            error_code=error_code,
            message=f"attempt {claim.attempt} failed: {error}; retrying in {delay:g} s",
        )
    result = {"details": details} if details else None
    finish(session, claim, FAILED, result, error, error_code, at=at)
    return FAILED


def release(session: Session, claim: Claim, reason: str = "its worker shut down") -> str:
    """Give the job back at once (a worker shutting down); this attempt is not counted.

    ``max_attempts`` grows by one so the attempt budget is unchanged; the
    attempt number still advances, keeping log lines of attempts apart.
    """
    at = now()
    return _requeue(
        session,
        claim,
        at=at,
        not_before=None,
        error=None,
        error_code=None,
        message=f"attempt {claim.attempt} released: {reason}",
        max_attempts=Job.max_attempts + 1,
    )


def transition(
    store: MetadataStore,
    fn: Callable[Concatenate[Session, Claim, P], object],
    claim: Claim,
    *args: P.args,
    **kwargs: P.kwargs,
) -> bool:
    """Run one session-level transition in its own transaction; ``False`` if stale.

    ``transition(store, finish, claim, CANCELLED, error=...)`` is how a worker
    ends an attempt that wrote nothing else.
    """
    try:
        with store.write() as s:
            fn(s, claim, *args, **kwargs)
    except StaleAttempt:
        return False
    return True


# The reaper ------------------------------------------------------------------------------


def reap(
    store: MetadataStore, *, at: datetime | None = None, limit: int = 100
) -> list[tuple[int, str]]:
    """Re-queue (or fail, or cancel) running jobs whose lease expired before ``at``.

    Returns ``(job_id, new_state)`` for each job this call changed. Several
    reapers may run at once: each change is conditional on the attempt id
    seen, and PostgreSQL skips rows another reaper holds.
    """
    at = at or now()
    expired = (Job.state == RUNNING, Job.lease_expires_at < at)
    with store.read() as s:
        if s.scalar(select(Job.id).where(*expired).limit(1)) is None:
            return []
    q = (
        select(
            Job.id,
            Job.attempt_id,
            Job.attempt,
            Job.max_attempts,
            Job.cancel_requested,
            Job.worker_id,
            Job.heartbeat_at,
        )
        .where(*expired)
        .order_by(Job.id)
        .limit(limit)
    )
    if store.dialect == "postgresql":
        q = q.with_for_update(skip_locked=True)
    changed: list[tuple[int, str]] = []
    with store.write() as s:
        for row in s.execute(q).all():
            seen = [Job.id == row.id, Job.attempt_id == row.attempt_id, *expired]
            last = row.heartbeat_at.isoformat(timespec="seconds") if row.heartbeat_at else "never"
            lost = f"worker {row.worker_id} stopped sending heartbeats (last at {last})"
            values: dict[str, Any]
            if row.cancel_requested:
                state = CANCELLED
                values = {"finished_at": at, "error": f"cancelled by request; {lost}"}
                values["error_code"] = "cancelled"
            elif row.attempt >= row.max_attempts:
                state = FAILED
                values = {
                    "finished_at": at,
                    "error": f"{lost}; gave up after {row.attempt} attempts",
                }
                values["error_code"] = "worker_lost"
            else:
                state = QUEUED
                values = {"attempt_id": None, "worker_id": None, "not_before": None}
                values.update(error=lost, error_code="worker_lost")
            ok = _update(s, seen, state=state, lease_expires_at=None, **values)
            if ok:
                _log_row(
                    s, row.id, row.attempt, f"attempt {row.attempt}: {lost}; {state}", "warning"
                )
                changed.append((row.id, state))
    return changed
