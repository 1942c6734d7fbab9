"""Benchmark tasks and their stored splits."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from openmaas.api import convert, schemas
from openmaas.api.deps import CtxDep, DbId, Limit, Offset
from openmaas.domain import tasks
from openmaas.errors import InvalidInput
from openmaas.ml.tasks import TaskSpec

router = APIRouter(tags=["tasks"])


def _spec(raw: dict[str, object]) -> TaskSpec:
    try:
        return TaskSpec.model_validate(raw)
    except ValidationError as e:
        errors = [
            {"field": "spec." + ".".join(str(x) for x in err["loc"]), "message": err["msg"]}
            for err in e.errors()[:20]
        ]
        message = "; ".join(f"{x['field']}: {x['message']}" for x in errors)
        raise InvalidInput(f"invalid task spec: {message}", details={"errors": errors}) from None


@router.post(
    "/projects/{project_id}/tasks",
    response_model=schemas.TaskOut,
    status_code=status.HTTP_201_CREATED,
)
def create_task(project_id: DbId, body: schemas.TaskIn, ctx: CtxDep) -> schemas.TaskOut:
    """Define a task; its splits are computed now and never change."""
    view = tasks.create(
        ctx,
        project_id,
        body.name,
        body.dataset_id,
        _spec(body.spec),
        version=body.dataset_version,
        description=body.description,
        licence=body.licence,
        citation=body.citation,
    )
    return convert.task(view)


@router.get("/tasks", response_model=schemas.PageOut[schemas.TaskOut])
def list_tasks(
    ctx: CtxDep,
    project_id: DbId | None = None,
    dataset_id: DbId | None = None,
    type: str | None = None,
    name: Annotated[str | None, Query(max_length=128)] = None,
    q: Annotated[str | None, Query(max_length=128)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> schemas.PageOut[schemas.TaskOut]:
    page = tasks.list_tasks(
        ctx,
        project_id=project_id,
        dataset_id=dataset_id,
        task_type=type,
        name=name,
        q=q,
        limit=limit,
        offset=offset,
    )
    return schemas.PageOut(
        items=[convert.task(v) for v in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/tasks/{task_id}", response_model=schemas.TaskOut)
def get_task(task_id: DbId, ctx: CtxDep) -> schemas.TaskOut:
    return convert.task(tasks.get(ctx, task_id))


@router.patch("/tasks/{task_id}", response_model=schemas.TaskOut)
def update_task(task_id: DbId, body: schemas.TaskPatch, ctx: CtxDep) -> schemas.TaskOut:
    """Edit the description, licence or citation; the definition itself is immutable."""
    view = tasks.update(
        ctx, task_id, description=body.description, licence=body.licence, citation=body.citation
    )
    return convert.task(view)


@router.delete("/tasks/{task_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_task(task_id: DbId, ctx: CtxDep) -> None:
    tasks.delete(ctx, task_id)


@router.post(
    "/tasks/{task_id}/rebase", response_model=schemas.TaskOut, status_code=status.HTTP_201_CREATED
)
def rebase_task(task_id: DbId, body: schemas.RebaseIn, ctx: CtxDep) -> schemas.TaskOut:
    """A new task version on a newer (appended) dataset version; old rows keep their folds."""
    return convert.task(tasks.rebase(ctx, task_id, body.dataset_version))


@router.get(
    "/tasks/{task_id}/splits",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/vnd.apache.parquet": {}}}},
)
def download_splits(task_id: DbId, ctx: CtxDep) -> StreamingResponse:
    """The fold of every row: columns row, outer, inner_0..inner_{k-1} (-1: not assigned)."""
    task, chunks = tasks.splits(ctx, task_id)
    return StreamingResponse(
        chunks,
        media_type="application/vnd.apache.parquet",
        headers={"Content-Disposition": f'attachment; filename="task-{task.id}-splits.parquet"'},
    )
