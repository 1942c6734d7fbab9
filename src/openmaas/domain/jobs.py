"""Jobs as users see them: states, enqueueing, cancelling, reading and logs.

A job is one row of ``jobs``; its ``state`` moves only along these edges, each
a conditional UPDATE that reports whether the caller won it::

    queued ──claim──▶ running ──finish──▶ succeeded | failed | cancelled
      │ ▲               │
      │ └─retry/reap/release─┘   (a new attempt; the checkpoint is kept)
      └──cancel──▶ cancelled

``queued``/``running`` are live, the other three are terminal and final. A
queued job is cancelled at once; a running one gets ``cancel_requested`` and
its worker kills the attempt and records ``cancelled``. The worker side of the
machine (claim, heartbeat, checkpoint, finish, retry, reap) and its fencing
rules live in ``openmaas.jobs.queue``.

Enqueueing is a row: a domain service calls :func:`enqueue` inside its own
write transaction, so the job exists exactly when the thing it works for does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from openmaas.domain import audit
from openmaas.domain.context import Ctx
from openmaas.domain.pages import Page, check_window, page_of
from openmaas.domain.policy import Action
from openmaas.domain.projects import authorize
from openmaas.errors import Conflict, InvalidInput, NotFound
from openmaas.store.metadata.scoped import readable_projects
from openmaas.store.metadata.tables import Job, JobLog, Project

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
LIVE = frozenset({QUEUED, RUNNING})
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})

MAX_KIND_LENGTH = 32  # jobs.kind is String(32)
LOG_LEVELS = ("debug", "info", "warning", "error")


def now() -> datetime:
    return datetime.now(UTC)


# Row-level transitions (inside the caller's transaction) -----------------------------


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    *,
    project_id: int | None,
    created_by: int | None,
    priority: int = 0,
    max_attempts: int = 3,
    not_before: datetime | None = None,
) -> Job:
    """Add a queued job to ``session``; it is claimable once the transaction commits.

    Higher ``priority`` is claimed first, then older jobs. ``max_attempts``
    bounds how often the job runs (retries of transient errors and re-runs
    after a worker died both count). ``payload`` must be JSON.
    """
    if not kind or len(kind) > MAX_KIND_LENGTH:
        raise InvalidInput(f"job kind must be 1 to {MAX_KIND_LENGTH} characters, got {kind!r}")
    if max_attempts < 1:
        raise InvalidInput(f"max_attempts must be at least 1, got {max_attempts}")
    try:
        json.dumps(payload)
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"job payload is not JSON: {e}") from e
    job = Job(
        kind=kind,
        state=QUEUED,
        payload=payload,
        project_id=project_id,
        created_by=created_by,
        priority=priority,
        max_attempts=max_attempts,
        not_before=not_before,
        checkpoint={},
        progress={},
    )
    session.add(job)
    session.flush()
    return job


def request_cancel(session: Session, job_id: int, *, at: datetime | None = None) -> bool:
    """Cancel a queued job now, or ask the worker of a running one to stop it.

    Returns whether this call changed the job: ``False`` when it is already
    terminal (or already asked to cancel). Each step is conditional, so a job
    that changes state under us (claimed, re-queued) is caught by the next.
    """
    at = at or now()
    for _ in range(3):
        cancelled = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == QUEUED)
            .values(
                state=CANCELLED,
                finished_at=at,
                cancel_requested=True,
                error="cancelled before it started",
                error_code="cancelled",
            )
            .execution_options(synchronize_session=False)
        )
        if cancelled.rowcount:  # type: ignore[attr-defined]
            return True
        asked = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == RUNNING, Job.cancel_requested.is_(False))
            .values(cancel_requested=True)
            .execution_options(synchronize_session=False)
        )
        if asked.rowcount:  # type: ignore[attr-defined]
            return True
        state, requested = session.execute(
            select(Job.state, Job.cancel_requested).where(Job.id == job_id)
        ).one_or_none() or (None, False)
        if state is None or state in TERMINAL or (state == RUNNING and requested):
            return False
    return False


# The service -------------------------------------------------------------------------


def _load(ctx: Ctx, s: Session, job_id: int, action: Action) -> Job:
    job = s.get(Job, job_id)
    if job is None:
        raise NotFound("job not found")
    if job.project_id is None:  # a platform job (e.g. maintenance): admins only
        if not ctx.principal.is_admin:
            raise NotFound("job not found")
        return job
    authorize(ctx, s, job.project_id, action, kind="job", owner_id=job.created_by)
    return job


def _check_states(state: str | Iterable[str] | None) -> list[str]:
    if state is None:
        return []
    states = [state] if isinstance(state, str) else list(state)
    for st in states:
        if st not in STATES:
            raise InvalidInput(
                f"unknown job state {st!r}; valid states: {', '.join(STATES)}",
                details={"field": "state"},
            )
    return states


def get(ctx: Ctx, job_id: int) -> Job:
    """A job the caller can read (``NotFound`` otherwise)."""
    with ctx.store.read() as s:
        return _load(ctx, s, job_id, Action.read)


def list_jobs(
    ctx: Ctx,
    project_id: int | None = None,
    *,
    state: str | Iterable[str] | None = None,
    kind: str | None = None,
    created_by: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[Job]:
    """Jobs newest first: of one project, or of every project the caller can read.

    Platform jobs (no project) are listed for admins only, and only when no
    ``project_id`` is given.
    """
    check_window(limit, offset)
    states = _check_states(state)
    with ctx.store.read() as s:
        q = select(Job)
        if project_id is not None:
            authorize(ctx, s, project_id, Action.read)
            q = q.where(Job.project_id == project_id)
        else:
            readable = select(Project.id).where(readable_projects(ctx.principal))
            if ctx.principal.is_admin:
                q = q.where(or_(Job.project_id.is_(None), Job.project_id.in_(readable)))
            else:
                q = q.where(Job.project_id.in_(readable))
        if states:
            q = q.where(Job.state.in_(states))
        if kind is not None:
            q = q.where(Job.kind == kind)
        if created_by is not None:
            q = q.where(Job.created_by == created_by)
        total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
        rows = s.scalars(q.order_by(Job.id.desc()).limit(limit).offset(offset)).all()
    return page_of(list(rows), total, limit, offset)


def cancel(ctx: Ctx, job_id: int) -> Job:
    """Cancel a job: its creator (a contributor) or a maintainer may.

    A queued job is ``cancelled`` on return; a running one still shows
    ``running`` with ``cancel_requested`` until its worker has stopped it.
    Cancelling a cancelled job is a no-op; a finished one is a ``Conflict``.
    """
    with ctx.store.write() as s:
        job = _load(ctx, s, job_id, Action.edit)
        if job.state == CANCELLED or (job.state == RUNNING and job.cancel_requested):
            return job
        if job.state in TERMINAL:
            raise Conflict(
                f"job {job_id} already {job.state}; only queued or running jobs can be cancelled",
                details={"state": job.state},
            )
        changed = request_cancel(s, job_id)
        s.refresh(job)
        if not changed and job.state != CANCELLED:
            raise Conflict(
                f"job {job_id} already {job.state}; only queued or running jobs can be cancelled",
                details={"state": job.state},
            )
        s.add(
            JobLog(
                job_id=job.id,
                attempt=job.attempt,
                level="warning",
                message=f"cancellation requested by {ctx.principal.username}",
            )
        )
        audit.record(
            s,
            ctx.principal,
            "job.cancel",
            "job",
            job.id,
            project_id=job.project_id,
            details={"kind": job.kind, "state": job.state},
        )
    return job


def logs(
    ctx: Ctx,
    job_id: int,
    *,
    after_id: int = 0,
    attempt: int | None = None,
    limit: int = 1000,
) -> list[JobLog]:
    """Log lines of a job in order, those with ``id > after_id`` (for following)."""
    check_window(limit, 0)
    with ctx.store.read() as s:
        _load(ctx, s, job_id, Action.read)
        q = select(JobLog).where(JobLog.job_id == job_id, JobLog.id > after_id)
        if attempt is not None:
            q = q.where(JobLog.attempt == attempt)
        return list(s.scalars(q.order_by(JobLog.id).limit(limit)).all())
