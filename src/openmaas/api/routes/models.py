"""The model registry: models, versions (from runs, uploads, MLflow folders), aliases."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, status
from fastapi.responses import StreamingResponse

from openmaas.api import schemas
from openmaas.api.deps import CtxDep, DbId, Limit, Offset
from openmaas.api.registry_schemas import (
    AliasIn,
    ModelEventOut,
    ModelIn,
    ModelOut,
    ModelPatch,
    VersionFromRunIn,
    VersionOut,
)
from openmaas.api.uploads import ingest_upload
from openmaas.domain import models
from openmaas.errors import InvalidInput

router = APIRouter(tags=["models"])
VersionNo = Annotated[int, Query(ge=1, le=2**31 - 1)]

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The model file or a .zip/.tar.gz of a model folder or MLflow model, "
        "streamed as the request body.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def _card(body: ModelIn | ModelPatch) -> models.Card:
    return models.Card(
        description=body.description, intended_use=body.intended_use, licence=body.licence,
        citation=body.citation, tags=body.tags,
    )  # fmt: skip


@router.post(
    "/projects/{project_id}/models", response_model=ModelOut, status_code=status.HTTP_201_CREATED
)
def create_model(project_id: DbId, body: ModelIn, ctx: CtxDep) -> ModelOut:
    """Register a model name in a project (versions come next)."""
    return ModelOut.of(models.create_model(ctx, project_id, body.name, _card(body)))


@router.get("/models", response_model=schemas.PageOut[ModelOut])
def list_models(
    ctx: CtxDep,
    project_id: DbId | None = None,
    q: Annotated[str | None, Query(max_length=128, description="Name contains")] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> schemas.PageOut[ModelOut]:
    page = models.list_models(ctx, project_id=project_id, q=q, tag=tag, limit=limit, offset=offset)
    return schemas.PageOut(
        items=[ModelOut.of(v) for v in page.items],
        total=page.total, limit=page.limit, offset=page.offset,
    )  # fmt: skip


@router.get("/models/resolve", response_model=VersionOut)
def resolve_model(
    ctx: CtxDep, ref: Annotated[str, Query(min_length=1, max_length=300)]
) -> VersionOut:
    """``name``, ``name@3``, ``name@production`` or ``org/project/name@alias``."""
    return VersionOut.of(models.resolve(ctx, ref))


@router.get("/models/{model_id}", response_model=ModelOut)
def get_model(model_id: DbId, ctx: CtxDep) -> ModelOut:
    return ModelOut.of(models.get_model(ctx, model_id))


@router.patch("/models/{model_id}", response_model=ModelOut)
def update_model(model_id: DbId, body: ModelPatch, ctx: CtxDep) -> ModelOut:
    """Edit the model card."""
    return ModelOut.of(models.update_card(ctx, model_id, _card(body)))


@router.delete("/models/{model_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_model(model_id: DbId, ctx: CtxDep) -> None:
    models.delete_model(ctx, model_id)


@router.post(
    "/models/{model_id}/versions",
    response_model=VersionOut,
    status_code=status.HTTP_201_CREATED,
)
def version_from_run(model_id: DbId, body: VersionFromRunIn, ctx: CtxDep) -> VersionOut:
    """A new version from a succeeded run's final model."""
    return VersionOut.of(models.version_from_run(ctx, model_id, body.run_id, body.description))


@router.post(
    "/models/{model_id}/versions/upload",
    response_model=VersionOut,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_UPLOAD_BODY,
)
async def upload_version(
    model_id: DbId,
    request: Request,
    ctx: CtxDep,
    filename: Annotated[str, Query(min_length=1, max_length=255)],
    flavor: Annotated[str | None, Query(max_length=32)] = None,
    signature: Annotated[str | None, Query(max_length=1_000_000)] = None,
    description: Annotated[str, Query(max_length=10_000)] = "",
) -> VersionOut:
    """Upload a model file (model.txt, *.onnx, *.skops) or an archive of a model folder
    or of an MLflow model (its MLmodel with the lightgbm or sklearn flavour)."""
    sig = _json_object(signature, "signature")
    view = await ingest_upload(
        request,
        ctx.platform,
        lambda upload: models.version_from_upload(
            ctx,
            model_id,
            upload.complete(),
            filename,
            flavor=flavor,
            signature=sig,
            description=description,
        ),
    )
    return VersionOut.of(view)


def _json_object(raw: str | None, field: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object", details={"field": field})
    return value


@router.get("/models/{model_id}/versions", response_model=schemas.PageOut[VersionOut])
def list_versions(
    model_id: DbId, ctx: CtxDep, limit: Limit = 50, offset: Offset = 0
) -> schemas.PageOut[VersionOut]:
    page = models.list_versions(ctx, model_id, limit=limit, offset=offset)
    return schemas.PageOut(
        items=[VersionOut.of(v) for v in page.items],
        total=page.total, limit=page.limit, offset=page.offset,
    )  # fmt: skip


@router.get("/models/{model_id}/versions/{version}", response_model=VersionOut)
def get_version(model_id: DbId, version: DbId, ctx: CtxDep) -> VersionOut:
    return VersionOut.of(models.get_version(ctx, model_id, version))


@router.get(
    "/models/{model_id}/versions/{version}/files/{path:path}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string"}}}}},
)
def download_file(model_id: DbId, version: DbId, path: str, ctx: CtxDep) -> StreamingResponse:
    """One file of a version (the SDK downloads them all to load the model locally)."""
    row = models.file_of(ctx, model_id, version, path)
    return StreamingResponse(
        ctx.artifacts.iter_chunks(row.digest),
        media_type="application/octet-stream",
        headers={"Content-Length": str(row.size_bytes), "X-Content-SHA256": row.digest},
    )


@router.put("/models/{model_id}/aliases/{alias}", response_model=ModelOut)
def set_alias(model_id: DbId, alias: str, body: AliasIn, ctx: CtxDep) -> ModelOut:
    """Point an alias (``staging``, ``production``, ``archived`` or your own) at a version;
    ``production`` needs a maintainer."""
    return ModelOut.of(models.set_alias(ctx, model_id, alias, body.version))


@router.delete("/models/{model_id}/aliases/{alias}", response_model=ModelOut)
def remove_alias(model_id: DbId, alias: str, ctx: CtxDep) -> ModelOut:
    return ModelOut.of(models.remove_alias(ctx, model_id, alias))


@router.get("/models/{model_id}/history", response_model=schemas.PageOut[ModelEventOut])
def model_history(
    model_id: DbId, ctx: CtxDep, limit: Limit = 50, offset: Offset = 0
) -> schemas.PageOut[ModelEventOut]:
    """Every version, alias and card change, newest first, with who and when."""
    page = models.history(ctx, model_id, limit=limit, offset=offset)
    return schemas.PageOut(
        items=[ModelEventOut.model_validate(e) for e in page.items],
        total=page.total, limit=page.limit, offset=page.offset,
    )  # fmt: skip
