"""Runs on tasks, their logs, metrics and artifacts, and task leaderboards."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import StreamingResponse

from openmaas.api import convert, schemas
from openmaas.api.deps import CtxDep, DbId, Limit, Offset
from openmaas.domain import runs
from openmaas.ml.metrics import get_metric

router = APIRouter(tags=["runs"])


@router.post(
    "/tasks/{task_id}/runs", response_model=schemas.RunOut, status_code=status.HTTP_201_CREATED
)
def create_run(task_id: DbId, body: schemas.RunIn, ctx: CtxDep) -> schemas.RunOut:
    """Queue a training run; everything is validated before it is queued."""
    view = runs.create(
        ctx, task_id, body.algorithm, body.params,
        seed=body.seed, name=body.name, parent_run_id=body.parent_run_id,
        memory_limit_mb=body.memory_limit_mb, divergence_retries=body.divergence_retries,
    )  # fmt: skip
    return convert.run(view)


@router.get("/runs", response_model=schemas.PageOut[schemas.RunOut])
def list_runs(
    ctx: CtxDep,
    task_id: DbId | None = None,
    project_id: DbId | None = None,
    algorithm: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[str | None, Query(max_length=16)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> schemas.PageOut[schemas.RunOut]:
    page = runs.list_runs(
        ctx, task_id=task_id, project_id=project_id, algorithm=algorithm, state=state,
        limit=limit, offset=offset,
    )  # fmt: skip
    return schemas.PageOut(
        items=[convert.run(v) for v in page.items],
        total=page.total, limit=page.limit, offset=page.offset,
    )  # fmt: skip


@router.get("/runs/{run_id}", response_model=schemas.RunOut)
def get_run(run_id: DbId, ctx: CtxDep) -> schemas.RunOut:
    return convert.run(runs.get(ctx, run_id))


@router.post("/runs/{run_id}/cancel", response_model=schemas.RunOut)
def cancel_run(run_id: DbId, ctx: CtxDep) -> schemas.RunOut:
    """Stop a queued or running run (its creator or a maintainer)."""
    return convert.run(runs.cancel(ctx, run_id))


@router.delete("/runs/{run_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_run(run_id: DbId, ctx: CtxDep) -> None:
    runs.delete(ctx, run_id)


@router.get("/runs/{run_id}/logs", response_model=list[schemas.LogOut])
def run_logs(
    run_id: DbId,
    ctx: CtxDep,
    after_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Limit = 1000,
) -> list[schemas.LogOut]:
    """Log lines after ``after_id`` (poll with the last id to follow)."""
    return [schemas.LogOut.model_validate(x) for x in runs.logs(ctx, run_id, after_id, limit)]


@router.get("/runs/{run_id}/metrics", response_model=dict[str, list[list[float]]])
def run_metrics(
    run_id: DbId, ctx: CtxDep, key: Annotated[str | None, Query(max_length=128)] = None
) -> dict[str, list[list[float]]]:
    """Learning curves and logged metrics: ``{key: [[step, value], ...]}``."""
    return {
        k: [[step, value] for step, value in v] for k, v in runs.metrics(ctx, run_id, key).items()
    }


@router.get("/runs/{run_id}/artifacts", response_model=list[schemas.ArtifactOut])
def list_artifacts(run_id: DbId, ctx: CtxDep) -> list[schemas.ArtifactOut]:
    return [schemas.ArtifactOut.model_validate(a) for a in runs.artifacts(ctx, run_id)]


@router.get(
    "/runs/{run_id}/artifacts/{name:path}",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "application/vnd.apache.parquet": {
                    "schema": {"type": "string", "format": "binary"}
                },
                "text/plain": {"schema": {"type": "string"}},
                "application/json": {"schema": {}},
            }
        }
    },
)
def download_artifact(run_id: DbId, name: str, ctx: CtxDep) -> StreamingResponse:
    """One file of the run, e.g. ``predictions.parquet`` or ``models/final/model.txt``."""
    row = runs.artifact(ctx, run_id, name)
    return StreamingResponse(
        ctx.artifacts.iter_chunks(row.digest),
        media_type=row.media_type,
        headers={"Content-Length": str(row.size_bytes), "X-Content-SHA256": row.digest},
    )


@router.get("/tasks/{task_id}/leaderboard", response_model=schemas.LeaderboardOut)
def leaderboard(
    task_id: DbId,
    ctx: CtxDep,
    algorithm: Annotated[str | None, Query(max_length=64)] = None,
    contributor: Annotated[str | None, Query(max_length=64)] = None,
    org: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> schemas.LeaderboardOut:
    """Succeeded runs ranked by the task's primary metric (mean over outer folds)."""
    task, metric, page = runs.leaderboard(
        ctx, task_id, algorithm=algorithm, contributor=contributor, org=org, kind=kind,
        limit=limit, offset=offset,
    )  # fmt: skip
    return schemas.LeaderboardOut(
        task_id=task.id,
        metric=metric,
        direction="maximize" if get_metric(metric).greater_is_better else "minimize",
        items=[convert.entry(e) for e in page.items],
        total=page.total, limit=page.limit, offset=page.offset,
    )  # fmt: skip
