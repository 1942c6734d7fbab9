"""The FastAPI application: routers under /api/v1, one error shape, metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.responses import Response

from openmaas import __version__
from openmaas.api import handlers, schemas
from openmaas.api.deps import CtxDep
from openmaas.api.metrics import ApiMetrics, MetricsMiddleware, endpoint_metrics
from openmaas.api.routes import (
    algorithms,
    datasets,
    endpoints,
    identity,
    models,
    orgs,
    projects,
    run_uploads,
    runs,
    scoring,
    tasks,
    transforms,
)
from openmaas.config import Settings, get_settings
from openmaas.domain.context import Platform
from openmaas.serving.runtime import ServingRuntime

log = logging.getLogger("openmaas")


def create_app(platform: Platform | None = None, *, prepare: bool = True) -> FastAPI:
    """Build the app; ``prepare`` creates folders and migrates the database first."""
    platform = platform or Platform(get_settings())
    if prepare:
        platform.prepare()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if app.state.serving.ready:
            app.state.serving.stop()
        platform.store.dispose()

    app = FastAPI(
        title="OpenMaaS",
        version=__version__,
        description="Share datasets, define benchmark tasks, train, serve and govern models.",
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        responses={
            400: {"model": schemas.ErrorOut},
            401: {"model": schemas.ErrorOut},
            403: {"model": schemas.ErrorOut},
            404: {"model": schemas.ErrorOut},
            409: {"model": schemas.ErrorOut},
            413: {"model": schemas.ErrorOut},
            415: {"model": schemas.ErrorOut},
            422: {"model": schemas.ErrorOut},
        },
    )
    app.state.platform = platform
    app.state.serving = ServingRuntime(platform)
    metrics = ApiMetrics()
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    handlers.install(app)

    api = APIRouter(prefix="/api/v1")

    @api.get("/health", response_model=schemas.Health, tags=["meta"])
    def health() -> schemas.Health:
        return schemas.Health(status="ok", version=__version__, database=platform.store.dialect)

    for module in (
        identity, orgs, projects, datasets, tasks, algorithms, runs, run_uploads, models,
        endpoints, scoring, transforms,
    ):  # fmt: skip
        api.include_router(module.router)
    app.include_router(api)

    @app.get("/metrics", include_in_schema=False)
    def prometheus(ctx: CtxDep) -> Response:
        body, ctype = metrics.render()
        body += endpoint_metrics(ctx, app.state.serving)
        return Response(body, media_type=ctype)

    return app


def app_from_env() -> FastAPI:
    """Entry point for ``uvicorn --factory openmaas.api.app:app_from_env``."""
    return create_app(Platform(Settings()))
