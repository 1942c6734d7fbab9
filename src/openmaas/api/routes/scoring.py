"""Batch scoring: score a dataset version or an uploaded file as a job, fetch the result."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import StreamingResponse

from openmaas.api.deps import CtxDep, DbId
from openmaas.api.scoring_schemas import ScoreDatasetIn, ScoringJobOut
from openmaas.api.uploads import format_of, ingest_upload
from openmaas.domain import scoring
from openmaas.ml.scoring import check_format

router = APIRouter(tags=["scoring"])

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The rows to score (CSV, Parquet or JSON Lines), streamed as the body.",
        "content": {
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            "application/x-ndjson": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
Format = Annotated[str | None, Query(description="csv, parquet or jsonl")]
Filename = Annotated[str, Query(max_length=200)]


async def _upload(
    request: Request, ctx: CtxDep, target: scoring.Target, fmt: str | None, filename: str
) -> ScoringJobOut:
    kind = check_format(format_of(request, fmt))
    job = await ingest_upload(
        request,
        ctx.platform,
        lambda upload: scoring.score_upload(ctx, target, upload, kind, filename),
    )
    return ScoringJobOut.of(job)


@router.post(
    "/models/{model_id}/versions/{version}/score",
    response_model=ScoringJobOut,
    status_code=status.HTTP_201_CREATED,
)
def score_version(
    model_id: DbId, version: DbId, body: ScoreDatasetIn, ctx: CtxDep
) -> ScoringJobOut:
    """Queue a job scoring a dataset version with a model version (contributors)."""
    target = scoring.VersionRef(model_id, version)
    return ScoringJobOut.of(scoring.score_dataset(ctx, target, body.dataset_id, body.version))


@router.post(
    "/models/{model_id}/versions/{version}/score/upload",
    response_model=ScoringJobOut,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_UPLOAD_BODY,
)
async def score_version_upload(
    model_id: DbId,
    version: DbId,
    request: Request,
    ctx: CtxDep,
    format: Format = None,
    filename: Filename = "",
) -> ScoringJobOut:
    """Queue a job scoring an uploaded file with a model version (contributors)."""
    return await _upload(request, ctx, scoring.VersionRef(model_id, version), format, filename)


@router.post(
    "/endpoints/{name}/score", response_model=ScoringJobOut, status_code=status.HTTP_201_CREATED
)
def score_endpoint(name: str, body: ScoreDatasetIn, ctx: CtxDep) -> ScoringJobOut:
    """Queue a job scoring a dataset version with the version the endpoint serves most
    (whoever may call the endpoint)."""
    target = scoring.EndpointRef(name)
    return ScoringJobOut.of(scoring.score_dataset(ctx, target, body.dataset_id, body.version))


@router.post(
    "/endpoints/{name}/score/upload",
    response_model=ScoringJobOut,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_UPLOAD_BODY,
)
async def score_endpoint_upload(
    name: str, request: Request, ctx: CtxDep, format: Format = None, filename: Filename = ""
) -> ScoringJobOut:
    """Queue a job scoring an uploaded file with the version the endpoint serves most."""
    return await _upload(request, ctx, scoring.EndpointRef(name), format, filename)


@router.get("/scoring/{job_id}", response_model=ScoringJobOut)
def get_scoring_job(job_id: DbId, ctx: CtxDep) -> ScoringJobOut:
    """A scoring job's state and, once it succeeded, its result (its creator, maintainers)."""
    return ScoringJobOut.of(scoring.get(ctx, job_id))


@router.get(
    "/scoring/{job_id}/result",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/vnd.apache.parquet": {}, "text/csv": {}}}},
)
def download_result(
    job_id: DbId,
    ctx: CtxDep,
    format: Annotated[str, Query(pattern="^(parquet|csv)$")] = "parquet",
) -> StreamingResponse:
    """The predictions, streamed: Parquet as stored, or CSV converted batch by batch."""
    job, chunks, media = scoring.result(ctx, job_id, format)
    headers = {
        "Content-Disposition": f'attachment; filename="scoring-{job_id}.{format}"',
        "X-Content-SHA256": str((job.result or {})["digest"]),
    }
    if format == "parquet":
        headers["Content-Length"] = str((job.result or {})["size_bytes"])
    return StreamingResponse(chunks, media_type=media, headers=headers)
