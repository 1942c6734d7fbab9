"""Runs: a result on a task, and the leaderboard that ranks them.

A platform run is a row plus a queued job (kind ``run``) in one transaction;
a worker trains it (``openmaas.jobs.handlers.run``) and records the result
together with the job's fenced finish, so a run succeeds exactly once. While
it is queued or running, its state is its job's state.

Everything about the request is checked before anything is queued: the
algorithm exists and supports the task type, the hyperparameters are valid,
the parent run fits, the run options apply.

Run options travel in the job's payload (no columns of their own):

- ``memory_limit_mb``: the run's own memory limit; the worker enforces the
  lower of it and its own limit, and a run over it fails cleanly;
- ``divergence_retries``: when training diverges (NaN/inf loss, exploding
  gradients), run again with the learning rate divided by
  :data:`DIVERGENCE_LR_FACTOR`, up to this many times; only for algorithms
  with a ``learning_rate``. The run records the learning rate that finally
  ran in its params and the retries in its environment and log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from openmaas.domain import audit
from openmaas.domain import jobs as jobs_service
from openmaas.domain.context import Ctx
from openmaas.domain.pages import Page, check_window, page_of
from openmaas.domain.policy import Action
from openmaas.domain.projects import authorize
from openmaas.errors import Conflict, InvalidInput, NotFound
from openmaas.ml.catalog import registry
from openmaas.ml.metrics import get_metric
from openmaas.store.metadata.scoped import readable_projects
from openmaas.store.metadata.tables import (
    Job,
    Membership,
    Organization,
    Project,
    Run,
    RunArtifact,
    RunMetric,
    Task,
    User,
)

RUN_KIND = "run"
KINDS = ("platform", "external", "logged")
MAX_SEED = 2**31 - 1
MAX_DIVERGENCE_RETRIES = 5
DIVERGENCE_LR_FACTOR = 10.0
MIN_MEMORY_LIMIT_MB = 1
MAX_MEMORY_LIMIT_MB = 2**20  # 1 TiB


@dataclass(frozen=True)
class RunView:
    run: Run
    task: Task
    creator: str
    job: Job | None

    @property
    def state(self) -> str:
        """A platform run's state is its job's until the result is recorded."""
        if self.run.state in ("succeeded", "failed", "cancelled") or self.job is None:
            return self.run.state
        return self.job.state

    @property
    def error(self) -> str | None:
        return self.run.error or (self.job.error if self.job else None)

    @property
    def options(self) -> dict[str, Any]:
        """The run options it was created with (see the module docstring)."""
        payload = self.job.payload if self.job is not None else {}
        return {
            "memory_limit_mb": payload.get("memory_limit_mb"),
            "divergence_retries": payload.get("divergence_retries", 0),
        }


def _task(ctx: Ctx, s: Session, task_id: int, action: Action) -> Task:
    task = s.get(Task, task_id)
    if task is None:
        raise NotFound("task not found")
    authorize(ctx, s, task.project_id, action, kind="task")
    return task


def _load(ctx: Ctx, s: Session, run_id: int, action: Action) -> Run:
    run = s.get(Run, run_id)
    if run is None:
        raise NotFound("run not found")
    authorize(ctx, s, run.project_id, action, kind="run", owner_id=run.created_by)
    return run


def _view(s: Session, run: Run) -> RunView:
    task = s.get(Task, run.task_id)
    assert task is not None
    creator = s.scalar(select(User.username).where(User.id == run.created_by)) or ""
    job = s.get(Job, run.job_id) if run.job_id else None
    return RunView(run, task, creator, job)


def check_request(task: Task, algorithm: str, params: dict[str, Any], seed: int) -> dict[str, Any]:
    """The validated, complete hyperparameters; raises before anything is queued."""
    cls = registry.get_algorithm(algorithm)
    registry.check_supports(cls, task.task_type)
    if not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InvalidInput(
            f"seed must be an integer between 0 and {MAX_SEED}", details={"field": "seed"}
        )
    if "random_state" in params:
        raise InvalidInput(
            "set the run's seed instead of random_state", details={"field": "params.random_state"}
        )
    return registry.check_params(cls, params)


def check_options(
    algorithm: str, memory_limit_mb: int | None, divergence_retries: int
) -> dict[str, Any]:
    """The run options as job payload entries; raises before anything is queued."""
    options: dict[str, Any] = {}
    if memory_limit_mb is not None:
        if (
            isinstance(memory_limit_mb, bool)
            or not isinstance(memory_limit_mb, int)
            or not MIN_MEMORY_LIMIT_MB <= memory_limit_mb <= MAX_MEMORY_LIMIT_MB
        ):
            raise InvalidInput(
                f"memory_limit_mb must be an integer between {MIN_MEMORY_LIMIT_MB} and "
                f"{MAX_MEMORY_LIMIT_MB}; got {memory_limit_mb!r}",
                details={"field": "memory_limit_mb"},
            )
        options["memory_limit_mb"] = memory_limit_mb
    if (
        isinstance(divergence_retries, bool)
        or not isinstance(divergence_retries, int)
        or not 0 <= divergence_retries <= MAX_DIVERGENCE_RETRIES
    ):
        raise InvalidInput(
            f"divergence_retries must be an integer between 0 and {MAX_DIVERGENCE_RETRIES}; "
            f"got {divergence_retries!r}",
            details={"field": "divergence_retries"},
        )
    if divergence_retries:
        cls = registry.get_algorithm(algorithm)
        if not any(h.name == "learning_rate" for h in cls.hyperparameters()):
            raise InvalidInput(
                f"algorithm {algorithm!r} has no learning_rate to lower; "
                "divergence_retries applies only to algorithms that have one",
                details={"field": "divergence_retries"},
            )
        options["divergence_retries"] = divergence_retries
    return options


def create(
    ctx: Ctx,
    task_id: int,
    algorithm: str,
    params: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    name: str = "",
    parent_run_id: int | None = None,
    memory_limit_mb: int | None = None,
    divergence_retries: int = 0,
) -> RunView:
    """Queue a run of ``algorithm`` on a task; returns at once (the run is ``queued``).

    ``memory_limit_mb`` and ``divergence_retries``: see the module docstring.
    """
    params = params or {}
    with ctx.store.write() as s:
        task = _task(ctx, s, task_id, Action.create)
        full = check_request(task, algorithm, params, seed)
        options = check_options(algorithm, memory_limit_mb, divergence_retries)
        if parent_run_id is not None:
            _check_parent(ctx, s, task, algorithm, parent_run_id)
        run = Run(
            project_id=task.project_id,
            task_id=task.id,
            parent_id=parent_run_id,
            kind="platform",
            name=name[:128],
            algorithm=algorithm,
            params=full,
            seed=seed,
            state="queued",
            metric=task.spec["metrics"][0],
            created_by=ctx.principal.user_id,
        )
        s.add(run)
        s.flush()
        job = jobs_service.enqueue(
            s, RUN_KIND, {"run_id": run.id, **options},
            project_id=task.project_id, created_by=ctx.principal.user_id,
        )  # fmt: skip
        run.job_id = job.id
        audit.record(
            s, ctx.principal, "run.create", "run", run.id, project_id=task.project_id,
            details={"task_id": task.id, "algorithm": algorithm, "job_id": job.id, **options},
        )  # fmt: skip
        s.flush()
        return _view(s, run)


def _check_parent(ctx: Ctx, s: Session, task: Task, algorithm: str, parent_id: int) -> None:
    """Warm start: the parent is a succeeded run of the same algorithm on this task or an
    earlier version of it (the task it was re-based from)."""
    parent = _load(ctx, s, parent_id, Action.read)
    lineage = {task.id}
    current: Task | None = task
    while current is not None and current.parent_id is not None:
        lineage.add(current.parent_id)
        current = s.get(Task, current.parent_id)
    if parent.task_id not in lineage:
        raise InvalidInput(
            f"parent run {parent_id} is on another task; warm start needs a run on this task "
            "or on the task version it was re-based from",
            details={"field": "parent_run_id"},
        )
    if parent.algorithm != algorithm:
        raise InvalidInput(
            f"parent run {parent_id} used {parent.algorithm!r}, not {algorithm!r}",
            details={"field": "parent_run_id"},
        )
    if parent.state != "succeeded" or parent.kind != "platform":
        raise InvalidInput(
            f"parent run {parent_id} has no trained models to start from",
            details={"field": "parent_run_id"},
        )
    if not registry.get_algorithm(algorithm).warm_start_capable:
        raise InvalidInput(
            f"algorithm {algorithm!r} cannot warm-start", details={"field": "parent_run_id"}
        )


def get(ctx: Ctx, run_id: int) -> RunView:
    with ctx.store.read() as s:
        return _view(s, _load(ctx, s, run_id, Action.read))


def list_runs(
    ctx: Ctx,
    *,
    task_id: int | None = None,
    project_id: int | None = None,
    algorithm: str | None = None,
    state: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[RunView]:
    check_window(limit, offset)
    q = (
        select(Run)
        .join(Project, Project.id == Run.project_id)
        .where(readable_projects(ctx.principal))
    )
    if task_id is not None:
        q = q.where(Run.task_id == task_id)
    if project_id is not None:
        q = q.where(Run.project_id == project_id)
    if algorithm:
        q = q.where(Run.algorithm == algorithm)
    if state:
        q = q.outerjoin(Job, Job.id == Run.job_id).where(
            (Run.state == state) | ((Run.state == "queued") & (Job.state == state))
        )
    with ctx.store.read() as s:
        total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
        rows = s.scalars(q.order_by(Run.id.desc()).limit(limit).offset(offset)).all()
        return page_of([_view(s, r) for r in rows], total, limit, offset)


def cancel(ctx: Ctx, run_id: int) -> RunView:
    """Stop a queued or running run (its creator, or a maintainer)."""
    with ctx.store.write() as s:
        run = _load(ctx, s, run_id, Action.edit)
        if run.job_id is None:
            raise Conflict(f"run {run_id} is not a platform run; there is nothing to cancel")
        jobs_service.request_cancel(s, run.job_id)
        audit.record(s, ctx.principal, "run.cancel", "run", run.id, project_id=run.project_id)
        s.flush()
        return _view(s, run)


def delete(ctx: Ctx, run_id: int) -> None:
    with ctx.store.write() as s:
        run = _load(ctx, s, run_id, Action.edit)
        if run.job_id is not None:
            jobs_service.request_cancel(s, run.job_id)
        audit.record(s, ctx.principal, "run.delete", "run", run.id, project_id=run.project_id)
        s.delete(run)


def artifacts(ctx: Ctx, run_id: int) -> list[RunArtifact]:
    with ctx.store.read() as s:
        run = _load(ctx, s, run_id, Action.read)
        return list(
            s.scalars(
                select(RunArtifact).where(RunArtifact.run_id == run.id).order_by(RunArtifact.name)
            )
        )


def artifact(ctx: Ctx, run_id: int, name: str) -> RunArtifact:
    with ctx.store.read() as s:
        run = _load(ctx, s, run_id, Action.read)
        row = s.scalar(
            select(RunArtifact).where(RunArtifact.run_id == run.id, RunArtifact.name == name)
        )
    if row is None:
        raise NotFound(f"run {run_id} has no artifact {name!r}")
    return row


def metrics(ctx: Ctx, run_id: int, key: str | None = None) -> dict[str, list[tuple[int, float]]]:
    """Logged values and learning curves: ``{key: [(step, value), ...]}``."""
    with ctx.store.read() as s:
        run = _load(ctx, s, run_id, Action.read)
        q = select(RunMetric.key, RunMetric.step, RunMetric.value).where(RunMetric.run_id == run.id)
        if key:
            q = q.where(RunMetric.key == key)
        out: dict[str, list[tuple[int, float]]] = {}
        for k, step, value in s.execute(q.order_by(RunMetric.key, RunMetric.step, RunMetric.id)):
            out.setdefault(k, []).append((step, value))
    return out


def logs(ctx: Ctx, run_id: int, after_id: int = 0, limit: int = 1000) -> list[Any]:
    view = get(ctx, run_id)
    if view.run.job_id is None:
        return []
    return jobs_service.logs(ctx, view.run.job_id, after_id=after_id, limit=limit)


# Leaderboard ------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    rank: int
    run: Run
    contributor: str
    organisations: list[str]


def leaderboard(
    ctx: Ctx,
    task_id: int,
    *,
    algorithm: str | None = None,
    contributor: str | None = None,
    org: str | None = None,
    kind: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[Task, str, Page[Entry]]:
    """Succeeded runs ranked by the task's primary metric (mean over outer folds).

    Served by the ``(task_id, state, score)`` index, so a page costs the same at
    100,000 runs as at 100.
    """
    check_window(limit, offset)
    with ctx.store.read() as s:
        task = _task(ctx, s, task_id, Action.read)
        metric = task.spec["metrics"][0]
        maximize = get_metric(metric).greater_is_better
        q: Select[Any] = select(Run).where(
            Run.task_id == task.id, Run.state == "succeeded", Run.score.is_not(None)
        )
        if algorithm:
            q = q.where(Run.algorithm == algorithm)
        if kind:
            if kind not in KINDS:
                raise InvalidInput(
                    f"kind must be one of {', '.join(KINDS)}", details={"field": "kind"}
                )
            q = q.where(Run.kind == kind)
        if contributor:
            q = q.where(
                Run.created_by
                == select(User.id).where(User.username == contributor).scalar_subquery()
            )
        if org:
            q = q.where(
                Run.created_by.in_(
                    select(Membership.user_id)
                    .join(Organization, Organization.id == Membership.org_id)
                    .where(Organization.name == org)
                )
            )
        total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
        order = Run.score.desc() if maximize else Run.score.asc()
        rows = list(s.scalars(q.order_by(order, Run.id).limit(limit).offset(offset)))
        users = {r.created_by for r in rows if r.created_by is not None}
        names = dict(s.execute(select(User.id, User.username).where(User.id.in_(users))).all())
        orgs: dict[int, list[str]] = {}
        for uid, oname in s.execute(
            select(Membership.user_id, Organization.name)
            .join(Organization, Organization.id == Membership.org_id)
            .where(Membership.user_id.in_(users))
            .order_by(Organization.name)
        ):
            orgs.setdefault(uid, []).append(oname)
    entries = [
        Entry(
            rank=offset + i + 1,
            run=r,
            contributor=names.get(r.created_by, "") if r.created_by else "",
            organisations=orgs.get(r.created_by, []) if r.created_by else [],
        )
        for i, r in enumerate(rows)
    ]
    return task, metric, page_of(entries, total, limit, offset)


def mark_started(s: Session, run: Run) -> None:
    if run.started_at is None:
        run.started_at = datetime.now(UTC)
