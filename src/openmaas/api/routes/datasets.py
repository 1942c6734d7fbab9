"""Datasets: streamed uploads, versions, profiles, downloads and the data card."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, status
from fastapi.responses import Response, StreamingResponse

from openmaas.api import convert, schemas
from openmaas.api.deps import CtxDep, DbId, Limit, Offset
from openmaas.api.uploads import format_of, ingest_upload
from openmaas.domain import datasets
from openmaas.errors import InvalidInput

router = APIRouter(tags=["datasets"])

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The file itself, streamed as the request body.",
        "content": {
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            "application/x-ndjson": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
Version = Annotated[str, "a version number or 'latest'"]


def _types(raw: str | None) -> dict[str, str] | None:
    if not raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidInput(
            'types must be a JSON object of column -> kind, e.g. {"zip": "categorical"}',
            details={"field": "types"},
        )
    return value


def _split_tags(tags: list[str] | None) -> list[str] | None:
    if tags is None:
        return None
    return [t for raw in tags for t in raw.split(",") if t.strip()]


@router.post(
    "/projects/{project_id}/datasets",
    response_model=schemas.DatasetCreatedOut,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_UPLOAD_BODY,
)
async def upload_dataset(
    project_id: DbId,
    request: Request,
    ctx: CtxDep,
    name: Annotated[str, Query(max_length=128)],
    format: Annotated[str | None, Query(description="csv, parquet or jsonl")] = None,
    description: Annotated[str | None, Query(max_length=10_000)] = None,
    source: Annotated[str | None, Query(max_length=2_000)] = None,
    licence: Annotated[str | None, Query(max_length=200)] = None,
    citation: Annotated[str | None, Query(max_length=2_000)] = None,
    tags: Annotated[list[str] | None, Query(max_length=50)] = None,
    target: Annotated[str | None, Query(max_length=1_000)] = None,
    types: Annotated[str | None, Query(max_length=100_000, description="JSON column->kind")] = None,
    note: Annotated[str, Query(max_length=2_000)] = "",
) -> schemas.DatasetCreatedOut:
    """Upload a CSV, Parquet or JSON Lines file as version 1 of a new dataset."""
    fmt = format_of(request, format)
    datasets.check_format(fmt)
    card = datasets.Card(
        description=description,
        source=source,
        licence=licence,
        citation=citation,
        tags=_split_tags(tags),
    )
    column_types = _types(types)
    view, version = await ingest_upload(
        request,
        ctx.platform,
        lambda upload: datasets.create(
            ctx, project_id, name, upload, fmt,
            card=card, target=target, types=column_types, note=note,
        ),
    )  # fmt: skip
    return schemas.DatasetCreatedOut(
        dataset=convert.dataset(view), version=convert.version(version)
    )


@router.get("/datasets", response_model=schemas.PageOut[schemas.DatasetOut])
def list_datasets(
    ctx: CtxDep,
    project_id: DbId | None = None,
    q: Annotated[str | None, Query(max_length=128, description="Name contains")] = None,
    tag: Annotated[list[str] | None, Query(max_length=20, description="Has all these tags")] = None,
    include_deprecated: bool = True,
    limit: Limit = 50,
    offset: Offset = 0,
) -> schemas.PageOut[schemas.DatasetOut]:
    """Search the datasets you can read."""
    page = datasets.list_datasets(
        ctx,
        project_id=project_id,
        q=q,
        tags=_split_tags(tag),
        include_deprecated=include_deprecated,
        limit=limit,
        offset=offset,
    )
    return schemas.PageOut(
        items=[convert.dataset(v) for v in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/datasets/{dataset_id}", response_model=schemas.DatasetOut)
def get_dataset(dataset_id: DbId, ctx: CtxDep) -> schemas.DatasetOut:
    return convert.dataset(datasets.get(ctx, dataset_id))


@router.patch("/datasets/{dataset_id}", response_model=schemas.DatasetOut)
def update_dataset(dataset_id: DbId, body: schemas.CardPatch, ctx: CtxDep) -> schemas.DatasetOut:
    """Edit the data card: description, source, licence, citation, tags."""
    card = datasets.Card(**body.model_dump())
    return convert.dataset(datasets.update_card(ctx, dataset_id, card))


@router.post("/datasets/{dataset_id}/deprecate", response_model=schemas.DatasetOut)
def deprecate_dataset(
    dataset_id: DbId, body: schemas.DeprecateIn, ctx: CtxDep
) -> schemas.DatasetOut:
    """Mark as deprecated, with a reason; it stays readable."""
    return convert.dataset(datasets.deprecate(ctx, dataset_id, body.reason))


@router.post("/datasets/{dataset_id}/undeprecate", response_model=schemas.DatasetOut)
def undeprecate_dataset(dataset_id: DbId, ctx: CtxDep) -> schemas.DatasetOut:
    return convert.dataset(datasets.deprecate(ctx, dataset_id, None))


@router.delete("/datasets/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(dataset_id: DbId, ctx: CtxDep) -> None:
    datasets.delete(ctx, dataset_id)


@router.get("/datasets/{dataset_id}/versions", response_model=list[schemas.VersionOut])
def list_versions(dataset_id: DbId, ctx: CtxDep) -> list[schemas.VersionOut]:
    return [convert.version(v) for v in datasets.list_versions(ctx, dataset_id)]


@router.post(
    "/datasets/{dataset_id}/versions",
    response_model=schemas.VersionOut,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_UPLOAD_BODY,
)
async def append_rows(
    dataset_id: DbId,
    request: Request,
    ctx: CtxDep,
    format: Annotated[str | None, Query(description="csv, parquet or jsonl")] = None,
    note: Annotated[str, Query(max_length=2_000)] = "",
    target: Annotated[str | None, Query(max_length=1_000)] = None,
) -> schemas.VersionOut:
    """Append rows: a new version with the latest version's rows followed by these."""
    fmt = format_of(request, format)
    datasets.check_format(fmt)
    row = await ingest_upload(
        request,
        ctx.platform,
        lambda upload: datasets.append(ctx, dataset_id, upload, fmt, note=note, target=target),
    )
    return convert.version(row)


@router.get("/datasets/{dataset_id}/versions/{version}", response_model=schemas.VersionOut)
def get_version(dataset_id: DbId, version: Version, ctx: CtxDep) -> schemas.VersionOut:
    _, row = datasets.get_version(ctx, dataset_id, version)
    return convert.version(row)


@router.get("/datasets/{dataset_id}/versions/{version}/profile")
def get_profile(dataset_id: DbId, version: Version, ctx: CtxDep) -> Response:
    """Per-column statistics, histograms, top values and a random sample of rows."""
    body = orjson.dumps(datasets.profile(ctx, dataset_id, version))
    return Response(body, media_type="application/json")


@router.get(
    "/datasets/{dataset_id}/versions/{version}/download",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/vnd.apache.parquet": {}, "text/csv": {}}}},
)
def download_version(
    dataset_id: DbId, version: Version, ctx: CtxDep, format: str = "parquet"
) -> StreamingResponse:
    """The version's rows as Parquet (as stored) or CSV, streamed."""
    row, chunks, media = datasets.download(ctx, dataset_id, version, format)
    ext = "parquet" if format == "parquet" else "csv"
    headers = {
        "Content-Disposition": f'attachment; filename="dataset-{dataset_id}-v{row.version}.{ext}"',
        "X-Content-SHA256": row.digest,
    }
    if format == "parquet":
        headers["Content-Length"] = str(row.size_bytes)
    return StreamingResponse(chunks, media_type=media, headers=headers)
