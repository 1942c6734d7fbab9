"""Benchmark tasks: a dataset version, targets, metrics and fixed splits.

Split indices are computed once, when the task is created, and stored as a
blob: every run on the task then uses exactly the same rows. The definition
never changes; re-basing onto a newer dataset version makes a new task version
in which the old rows keep their folds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from openmaas.domain import audit
from openmaas.domain import datasets as datasets_service
from openmaas.domain.context import Ctx
from openmaas.domain.names import check_name
from openmaas.domain.pages import Page, check_window, page_of
from openmaas.domain.policy import Action
from openmaas.domain.projects import authorize
from openmaas.errors import Conflict, InvalidInput, NotFound
from openmaas.ml.splits import Splits, compute_splits, rebase_splits
from openmaas.ml.tasks import TaskSpec, split_columns, validate_task
from openmaas.store.metadata.scoped import readable_projects
from openmaas.store.metadata.tables import Dataset, DatasetVersion, Project, Task


@dataclass(frozen=True)
class TaskView:
    task: Task
    dataset: Dataset
    dataset_version: DatasetVersion


def _frame(ctx: Ctx, version: DatasetVersion, columns: list[str]) -> Any:
    with ctx.artifacts.open(version.digest) as f:
        return pq.read_table(f, columns=columns).to_pandas()


def _kinds(version: DatasetVersion) -> dict[str, str]:
    return {c["name"]: c["kind"] for c in version.columns}


def _store_splits(ctx: Ctx, splits: Splits) -> str:
    return ctx.artifacts.put_stream(iter([splits.to_parquet_bytes()])).digest


def create(
    ctx: Ctx,
    project_id: int,
    name: str,
    dataset_id: int,
    spec: TaskSpec,
    *,
    version: int | str = "latest",
    description: str = "",
    licence: str | None = None,
    citation: str | None = None,
) -> TaskView:
    """Define a task on a dataset version the caller can read; computes its splits."""
    check_name(name)
    with ctx.store.read() as s:
        authorize(ctx, s, project_id, Action.create)
        _check_name_free(s, project_id, name)
    ds, dv = datasets_service.get_version(ctx, dataset_id, version)
    _check_dataset_shareable(ctx, ds, project_id)
    validate_task(spec, _kinds(dv), dv.n_rows)
    splits = compute_splits(spec, _frame(ctx, dv, split_columns(spec)))
    digest = _store_splits(ctx, splits)
    try:
        with ctx.store.write() as s:
            authorize(ctx, s, project_id, Action.create)
            _check_name_free(s, project_id, name)
            task = Task(
                project_id=project_id,
                name=name,
                version=1,
                dataset_version_id=dv.id,
                task_type=spec.type,
                spec=spec.model_dump(mode="json"),
                splits_digest=digest,
                n_rows=dv.n_rows,
                description=description,
                licence=licence,
                citation=citation,
                created_by=ctx.principal.user_id,
            )
            s.add(task)
            s.flush()
            audit.record(
                s,
                ctx.principal,
                "task.create",
                "task",
                task.id,
                project_id=project_id,
                details={"name": name, "dataset_version_id": dv.id, "type": spec.type},
            )
    except IntegrityError as e:
        raise Conflict(f"task {name!r} already exists in this project") from e
    return TaskView(task, ds, dv)


def _check_dataset_shareable(ctx: Ctx, ds: Dataset, project_id: int) -> None:
    """A task shows its dataset's name, rows and target to its own readers.

    So it may use a dataset of its own project or of a public one, never a
    private dataset of another project (that would leak it to this one's readers).
    """
    if ds.project_id == project_id:
        return
    with ctx.store.read() as s:
        visibility = s.scalar(select(Project.visibility).where(Project.id == ds.project_id))
    if visibility != "public":
        raise InvalidInput(
            "a task may use a dataset of its own project or of a public project; "
            f"dataset {ds.id} is private to another project",
            details={"field": "dataset_id"},
        )


def _check_name_free(s: Session, project_id: int, name: str) -> None:
    if s.scalar(select(Task.id).where(Task.project_id == project_id, Task.name == name)):
        raise Conflict(f"task {name!r} already exists in this project", details={"field": "name"})


def _load(ctx: Ctx, s: Session, task_id: int, action: Action) -> Task:
    task = s.get(Task, task_id)
    if task is None:
        raise NotFound("task not found")
    authorize(ctx, s, task.project_id, action, kind="task", owner_id=task.created_by)
    return task


def _view(s: Session, task: Task) -> TaskView:
    dv = s.get(DatasetVersion, task.dataset_version_id)
    assert dv is not None
    ds = s.get(Dataset, dv.dataset_id)
    assert ds is not None
    return TaskView(task, ds, dv)


def get(ctx: Ctx, task_id: int) -> TaskView:
    with ctx.store.read() as s:
        return _view(s, _load(ctx, s, task_id, Action.read))


def list_tasks(
    ctx: Ctx,
    *,
    project_id: int | None = None,
    dataset_id: int | None = None,
    task_type: str | None = None,
    name: str | None = None,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[TaskView]:
    check_window(limit, offset)
    query = (
        select(Task)
        .join(Project, Project.id == Task.project_id)
        .where(readable_projects(ctx.principal))
    )
    if project_id is not None:
        query = query.where(Task.project_id == project_id)
    if dataset_id is not None:
        query = query.where(
            Task.dataset_version_id.in_(
                select(DatasetVersion.id).where(DatasetVersion.dataset_id == dataset_id)
            )
        )
    if task_type:
        query = query.where(Task.task_type == task_type)
    if name:
        query = query.where(Task.name == name)
    if q:
        query = query.where(Task.name.contains(q, autoescape=True))
    with ctx.store.read() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = s.scalars(query.order_by(Task.id.desc()).limit(limit).offset(offset)).all()
        views = [_view(s, t) for t in rows]
    return page_of(views, total, limit, offset)


def update(
    ctx: Ctx,
    task_id: int,
    *,
    description: str | None = None,
    licence: str | None = None,
    citation: str | None = None,
) -> TaskView:
    """Only the description and licence fields change; the definition is immutable."""
    with ctx.store.write() as s:
        task = _load(ctx, s, task_id, Action.edit)
        changes: dict[str, Any] = {}
        for field, value in (
            ("description", description),
            ("licence", licence),
            ("citation", citation),
        ):
            if value is not None:
                setattr(task, field, value)
                changes[field] = value
        audit.record(
            s,
            ctx.principal,
            "task.update",
            "task",
            task.id,
            project_id=task.project_id,
            details=changes,
        )
        return _view(s, task)


# Later issues (runs) register checks that keep a task with results from going away.
DELETE_GUARDS: list[Any] = []


def delete(ctx: Ctx, task_id: int) -> None:
    with ctx.store.write() as s:
        task = _load(ctx, s, task_id, Action.edit)
        for guard in DELETE_GUARDS:
            guard(s, task)
        if s.scalar(select(func.count()).where(Task.parent_id == task.id)):
            raise Conflict(f"task {task.name!r} has re-based versions: delete them first")
        audit.record(
            s,
            ctx.principal,
            "task.delete",
            "task",
            task.id,
            project_id=task.project_id,
            details={"name": task.name, "version": task.version},
        )
        s.delete(task)


def rebase(ctx: Ctx, task_id: int, dataset_version: int | str = "latest") -> TaskView:
    """A new version of the task on a newer version of its dataset.

    The new dataset version must descend from the task's one by appends, so
    the old rows come first and unchanged; they keep their folds.
    """
    with ctx.store.read() as s:
        task = _load(ctx, s, task_id, Action.create)
        old_view = _view(s, task)
    ds, new_dv = datasets_service.get_version(ctx, old_view.dataset.id, dataset_version)
    old_dv = old_view.dataset_version
    if not _descends(ctx, new_dv, old_dv.id):
        raise InvalidInput(
            f"dataset version {new_dv.version} does not extend version {old_dv.version} by "
            "appended rows: define a new task instead",
            details={"field": "dataset_version"},
        )
    spec = TaskSpec.model_validate(task.spec)
    validate_task(spec, _kinds(new_dv), new_dv.n_rows)
    with ctx.artifacts.open(task.splits_digest) as f:
        old_splits = Splits.from_parquet(f)
    frame = _frame(ctx, new_dv, split_columns(spec))
    splits = rebase_splits(old_splits, spec, frame, old_dv.n_rows)
    digest = _store_splits(ctx, splits)
    with ctx.store.write() as s:
        task = _load(ctx, s, task_id, Action.create)
        latest = (
            s.scalar(
                select(func.max(Task.version)).where(
                    Task.project_id == task.project_id, Task.name == task.name
                )
            )
            or task.version
        )
        new = Task(
            project_id=task.project_id,
            name=task.name,
            version=latest + 1,
            parent_id=task.id,
            dataset_version_id=new_dv.id,
            task_type=task.task_type,
            spec=task.spec,
            splits_digest=digest,
            n_rows=new_dv.n_rows,
            description=task.description,
            licence=task.licence,
            citation=task.citation,
            created_by=ctx.principal.user_id,
        )
        s.add(new)
        s.flush()
        audit.record(
            s,
            ctx.principal,
            "task.rebase",
            "task",
            new.id,
            project_id=task.project_id,
            details={"parent": task.id, "dataset_version_id": new_dv.id},
        )
    return TaskView(new, ds, new_dv)


def _descends(ctx: Ctx, version: DatasetVersion, ancestor_id: int) -> bool:
    with ctx.store.read() as s:
        current: DatasetVersion | None = version
        while current is not None:
            if current.id == ancestor_id:
                return True
            current = s.get(DatasetVersion, current.parent_id) if current.parent_id else None
    return False


def splits(ctx: Ctx, task_id: int) -> tuple[Task, Iterator[bytes]]:
    view = get(ctx, task_id)
    return view.task, ctx.artifacts.iter_chunks(view.task.splits_digest)


def load_splits(ctx: Ctx, task_id: int) -> Splits:
    view = get(ctx, task_id)
    with ctx.artifacts.open(view.task.splits_digest) as f:
        return Splits.from_parquet(f)
