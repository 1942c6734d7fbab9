"""External runs (uploaded predictions) and logged runs (tracking from any script).

Predictions and files arrive as the raw request body, streamed to disk and
bounded by ``max_upload_bytes`` like dataset uploads; the server scores
predictions itself (``domain/run_uploads.py``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request, status
from pydantic import Field

from openmaas.api import convert, schemas
from openmaas.api.deps import CtxDep, DbId
from openmaas.api.uploads import format_of, ingest_upload
from openmaas.domain import run_uploads
from openmaas.errors import InvalidInput

router = APIRouter(tags=["runs"])

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_PREDICTIONS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The predictions file (Parquet or CSV), streamed as the request body: "
        "row, prediction and per task type proba_<class>, prediction_<target> or score.",
        "content": {"application/vnd.apache.parquet": _BINARY, "text/csv": _BINARY},
    }
}
_FILE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The file itself, streamed as the request body.",
        "content": {"application/octet-stream": _BINARY},
    }
}
Format = Annotated[str | None, Query(max_length=16, description="parquet or csv")]


class LoggedRunIn(schemas.In):
    name: str = Field(default="", max_length=128)
    algorithm: str = Field(default="custom", min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)


class ParamsIn(schemas.In):
    params: dict[str, Any]


class MetricIn(schemas.In):
    key: str = Field(min_length=1, max_length=128)
    value: float = Field(allow_inf_nan=False)
    step: int = Field(default=0, ge=0, le=run_uploads.MAX_STEP)


class MetricsIn(schemas.In):
    metrics: list[MetricIn] = Field(max_length=run_uploads.MAX_METRICS)


class EndIn(schemas.In):
    state: Literal["succeeded", "failed"] = "succeeded"
    error: str | None = Field(default=None, max_length=10_000)


def _params(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidInput(
            'params must be a JSON object, e.g. {"C": 1.0}', details={"field": "params"}
        )
    return value


@router.post(
    "/tasks/{task_id}/runs/external",
    response_model=schemas.RunOut,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_PREDICTIONS_BODY,
)
async def submit_predictions(
    task_id: DbId,
    request: Request,
    ctx: CtxDep,
    format: Format = None,
    algorithm: Annotated[str, Query(min_length=1, max_length=64)] = "external",
    name: Annotated[str, Query(max_length=128)] = "",
    description: Annotated[str, Query(max_length=10_000)] = "",
    params: Annotated[str | None, Query(max_length=20_000, description="JSON object")] = None,
) -> schemas.RunOut:
    """An external run: predictions made elsewhere, checked and scored by the server."""
    fmt = format_of(request, format)
    hyper = _params(params)
    view = await ingest_upload(
        request,
        ctx.platform,
        lambda upload: run_uploads.submit_predictions(
            ctx, task_id, upload, fmt,
            algorithm=algorithm, params=hyper, name=name, description=description,
        ),
    )  # fmt: skip
    return convert.run(view)


@router.post(
    "/tasks/{task_id}/runs/logged",
    response_model=schemas.RunOut,
    status_code=status.HTTP_201_CREATED,
)
def start_logged(task_id: DbId, body: LoggedRunIn, ctx: CtxDep) -> schemas.RunOut:
    """Start a logged run (``running``) to log parameters, metrics, files and predictions to."""
    view = run_uploads.start_logged(
        ctx, task_id, name=body.name, algorithm=body.algorithm, params=body.params
    )
    return convert.run(view)


@router.post("/runs/{run_id}/params", response_model=schemas.RunOut)
def log_params(run_id: DbId, body: ParamsIn, ctx: CtxDep) -> schemas.RunOut:
    """Add parameters to a running logged run; a logged parameter keeps its value."""
    return convert.run(run_uploads.log_params(ctx, run_id, body.params))


@router.post("/runs/{run_id}/metrics", status_code=status.HTTP_204_NO_CONTENT)
def log_metrics(run_id: DbId, body: MetricsIn, ctx: CtxDep) -> None:
    """Log values (a curve: one per step) to a running logged run; read them back with GET."""
    run_uploads.log_metrics(ctx, run_id, [m.model_dump() for m in body.metrics])


@router.put(
    "/runs/{run_id}/artifacts/{name:path}",
    response_model=schemas.ArtifactOut,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_FILE_BODY,
)
async def log_artifact(
    run_id: DbId, name: str, request: Request, ctx: CtxDep
) -> schemas.ArtifactOut:
    """Store a file of a running logged run (a model, a plot ...), replacing one so named."""
    row = await ingest_upload(
        request, ctx.platform, lambda upload: run_uploads.log_artifact(ctx, run_id, name, upload)
    )
    return schemas.ArtifactOut.model_validate(row)


@router.post(
    "/runs/{run_id}/predictions", response_model=schemas.RunOut, openapi_extra=_PREDICTIONS_BODY
)
async def log_predictions(
    run_id: DbId, request: Request, ctx: CtxDep, format: Format = None
) -> schemas.RunOut:
    """Predictions of a running logged run, scored by the server: they set its score."""
    fmt = format_of(request, format)
    view = await ingest_upload(
        request, ctx.platform, lambda upload: run_uploads.log_predictions(ctx, run_id, upload, fmt)
    )
    return convert.run(view)


@router.post("/runs/{run_id}/end", response_model=schemas.RunOut)
def end_run(run_id: DbId, body: EndIn, ctx: CtxDep) -> schemas.RunOut:
    """End a logged run as succeeded or failed; it is ranked if it logged predictions."""
    return convert.run(run_uploads.end(ctx, run_id, body.state, body.error))
