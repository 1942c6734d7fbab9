"""Model transforms: compress a version (ONNX, int8, distillation) as a job making a new one."""

from __future__ import annotations

from fastapi import APIRouter, status

from openmaas.api.deps import CtxDep, DbId
from openmaas.api.transform_schemas import TransformIn, TransformJobOut
from openmaas.domain import transforms

router = APIRouter(tags=["models"])


@router.post(
    "/models/{model_id}/versions/{version}/transforms",
    response_model=TransformJobOut,
    status_code=status.HTTP_201_CREATED,
)
def create_transform(
    model_id: DbId, version: DbId, body: TransformIn, ctx: CtxDep
) -> TransformJobOut:
    """Queue a job compressing a version into a new one (contributors); a request that
    cannot work (flavour, algorithm, no task to distill from) is refused at once."""
    return TransformJobOut.of(transforms.create(ctx, model_id, version, body.kind, body.params))


@router.get("/transforms/{job_id}", response_model=TransformJobOut)
def get_transform(job_id: DbId, ctx: CtxDep) -> TransformJobOut:
    """A transform job's state and, once it succeeded, the new version and its report."""
    return TransformJobOut.of(transforms.get(ctx, job_id))
