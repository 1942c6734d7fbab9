"""Endpoints: deploy model versions under a name, call them, watch them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import Response

from openmaas.api import schemas
from openmaas.api.deps import CtxDep, DbId, Limit, Offset, client_addr
from openmaas.api.monitoring_schemas import DriftOut, QualityOut, WindowStatOut
from openmaas.api.registry_schemas import (
    ConsumerIn,
    DeploymentIn,
    EndpointIn,
    EndpointOut,
    EndpointPatch,
    RecordOut,
    TargetIn,
    UsageOut,
)
from openmaas.domain import endpoints, monitoring
from openmaas.serving.runtime import ServingRuntime

router = APIRouter(tags=["endpoints"])

_CALL_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


def _targets(items: list[TargetIn]) -> list[endpoints.Target]:
    return [endpoints.Target(t.version_id, t.weight, t.shadow) for t in items]


def _runtime(request: Request) -> ServingRuntime:
    runtime: ServingRuntime = request.app.state.serving
    if not runtime.ready:
        runtime.start()
    return runtime


def _changed(request: Request) -> None:
    """The embedded runtime picks up a change made through this server at once."""
    runtime: ServingRuntime = request.app.state.serving
    if runtime.ready:
        runtime.refresh()


@router.post(
    "/projects/{project_id}/endpoints",
    response_model=EndpointOut,
    status_code=status.HTTP_201_CREATED,
)
def create_endpoint(
    project_id: DbId, body: EndpointIn, ctx: CtxDep, request: Request
) -> EndpointOut:
    """Deploy versions under a new endpoint name (maintainers)."""
    view = endpoints.create(
        ctx, project_id, body.name, _targets(body.targets), description=body.description,
        audience=body.audience, routing=body.routing, limits=body.limits,
        monitoring=body.monitoring,
    )  # fmt: skip
    _changed(request)
    return EndpointOut.of(view)


@router.get("/endpoints", response_model=schemas.PageOut[EndpointOut])
def list_endpoints(
    ctx: CtxDep, project_id: DbId | None = None, limit: Limit = 50, offset: Offset = 0
) -> schemas.PageOut[EndpointOut]:
    page = endpoints.list_endpoints(ctx, project_id=project_id, limit=limit, offset=offset)
    return schemas.PageOut(
        items=[EndpointOut.of(v) for v in page.items],
        total=page.total, limit=page.limit, offset=page.offset,
    )  # fmt: skip


@router.get("/endpoints/{name}", response_model=EndpointOut)
def get_endpoint(name: str, ctx: CtxDep) -> EndpointOut:
    return EndpointOut.of(endpoints.get(ctx, name))


@router.patch("/endpoints/{name}", response_model=EndpointOut)
def update_endpoint(name: str, body: EndpointPatch, ctx: CtxDep, request: Request) -> EndpointOut:
    view = endpoints.update(
        ctx, name, description=body.description, audience=body.audience, limits=body.limits,
        monitoring=body.monitoring,
    )  # fmt: skip
    _changed(request)
    return EndpointOut.of(view)


@router.delete("/endpoints/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_endpoint(name: str, ctx: CtxDep, request: Request) -> None:
    endpoints.delete(ctx, name)
    _changed(request)


@router.put("/endpoints/{name}/deployment", response_model=EndpointOut)
def deploy(name: str, body: DeploymentIn, ctx: CtxDep, request: Request) -> EndpointOut:
    """Replace the deployed versions (traffic split, canary, shadows, bandit) at once."""
    view = endpoints.deploy(ctx, name, _targets(body.targets), body.routing)
    _changed(request)
    return EndpointOut.of(view)


@router.put("/endpoints/{name}/consumers/{org}", response_model=EndpointOut)
def set_consumer(
    name: str, org: str, body: ConsumerIn, ctx: CtxDep, request: Request
) -> EndpointOut:
    """Let an organisation's members call the endpoint (with the ``consumers`` audience)."""
    view = endpoints.set_consumer(ctx, name, org, body.rate_per_minute)
    _changed(request)
    return EndpointOut.of(view)


@router.delete("/endpoints/{name}/consumers/{org}", response_model=EndpointOut)
def remove_consumer(name: str, org: str, ctx: CtxDep, request: Request) -> EndpointOut:
    view = endpoints.remove_consumer(ctx, name, org)
    _changed(request)
    return EndpointOut.of(view)


@router.get("/endpoints/{name}/usage", response_model=list[UsageOut])
def usage(name: str, ctx: CtxDep, days: Annotated[int, Query(ge=1, le=366)] = 30) -> list[UsageOut]:
    """Requests, rows and errors per consumer per day (maintainers)."""
    return [UsageOut.model_validate(u) for u in endpoints.usage(ctx, name, days=days)]


Windows = Annotated[int, Query(ge=1, le=10_000)]


@router.get("/endpoints/{name}/stats", response_model=list[WindowStatOut])
def stats(name: str, ctx: CtxDep, windows: Windows = 60) -> list[WindowStatOut]:
    """Per version and window (a minute), newest first: requests, errors, rows, mean
    latency and its histogram (``latency_buckets`` per upper bound in
    ``latency_buckets_ms``, then one for slower requests), latency percentiles
    read from it, and the raw counters in ``state`` (``feedback``,
    ``reward_sum``, ``shadow_rows``, ``shadow_abs_diff_sum``, ``shadow_disagree``)."""
    _, rows = endpoints.stats(ctx, name, windows=windows)
    return [WindowStatOut.of(r) for r in rows]


@router.get("/endpoints/{name}/drift", response_model=DriftOut)
def drift(name: str, ctx: CtxDep, windows: Windows = 60) -> DriftOut:
    """Feature drift and prediction distribution over the newest ``windows`` windows.

    Each version's inputs are compared with its training dataset version's
    profile (a version without a training dataset has no reference: its
    ``note`` says so). Per window and feature: ``psi`` (population stability
    index), ``ks`` (Kolmogorov-Smirnov statistic on the reference bins;
    None for categorical features, tested by chi-square), ``p_value`` and
    ``flagged`` (at least ``min_rows`` rows, ``psi >= psi_threshold`` and
    ``p_value < alpha``; ``psi_threshold`` is the endpoint's
    ``monitoring.psi_threshold``). ``predictions`` is the window's prediction
    histogram (or class counts) with its drift against the training target.
    ``current`` merges the newest windows until they hold ``min_rows`` rows;
    a version is flagged when it is, the endpoint when any version is.
    Windows are newest first.
    """
    return DriftOut.model_validate(monitoring.drift(ctx, name, windows=windows))


@router.get("/endpoints/{name}/quality", response_model=QualityOut)
def quality(name: str, ctx: CtxDep, windows: Windows = 60) -> QualityOut:
    """Live quality from the labels posted as feedback (``{"request_id", "label"}``, one
    label per row of the request), overall and per window (newest first).

    Classifiers get accuracy, log loss, Brier score and a confusion matrix;
    regressors MAE, RMSE, bias and R². A label counts in the window it arrives
    in; ``unmatched`` counts labels whose prediction the answering replica no
    longer remembered (it keeps about the last 100,000 rows).
    """
    return QualityOut.model_validate(monitoring.quality(ctx, name, windows=windows))


@router.get("/endpoints/{name}/records", response_model=schemas.PageOut[RecordOut])
def records(
    name: str,
    ctx: CtxDep,
    kind: Annotated[str | None, Query(pattern="^(request|feedback)$")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> schemas.PageOut[RecordOut]:
    """The sampled request log and the feedback (maintainers)."""
    page = endpoints.records(ctx, name, kind=kind, limit=limit, offset=offset)
    return schemas.PageOut(
        items=[RecordOut.model_validate(r) for r in page.items],
        total=page.total, limit=page.limit, offset=page.offset,
    )  # fmt: skip


@router.post("/endpoints/{name}/predict", openapi_extra=_CALL_BODY, response_class=Response)
async def predict(name: str, request: Request) -> Response:
    """Predictions for JSON records, columns + data, or MLflow's dataframe_split."""
    runtime = _runtime(request)
    body = await request.body()
    answer = runtime.predict(name, request.headers.get("authorization"), body, client_addr(request))
    return Response(answer.body, answer.status, dict(answer.headers), "application/json")


@router.post("/endpoints/{name}/feedback", openapi_extra=_CALL_BODY, response_class=Response)
async def feedback(name: str, request: Request) -> Response:
    """A reward and/or label for an earlier prediction, by its ``request_id``."""
    runtime = _runtime(request)
    body = await request.body()
    answer = runtime.feedback(
        name, request.headers.get("authorization"), body, client_addr(request)
    )
    return Response(answer.body, answer.status, dict(answer.headers), "application/json")
