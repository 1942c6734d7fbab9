"""``openmaas serve-endpoint``: run a serving replica for one endpoint (or all)."""

from __future__ import annotations

from typing import Annotated

import typer

from openmaas.cli.session import session


def serve_endpoint(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="The endpoint to serve (default: every endpoint).")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8080,
    max_batch_rows: Annotated[
        int, typer.Option(min=1, help="Most rows one micro-batched model call takes.")
    ] = 4096,
    graceful_timeout: Annotated[
        int, typer.Option(min=0, help="Seconds to finish requests in flight on SIGTERM.")
    ] = 30,
) -> None:
    """Serve predictions from the deployed versions, loaded from the artifact store.

    Stateless: run as many as needed behind any load balancer. Deployment changes
    are picked up within a second or two; /healthz and /readyz are the probes.
    """
    import uvicorn

    from openmaas.serving.replica import ReplicaApp
    from openmaas.serving.runtime import ServingRuntime

    p = session(ctx).make_platform()
    p.prepare()
    runtime = ServingRuntime(p, only=name)
    app = ReplicaApp(runtime, max_batch_rows=max_batch_rows)
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=graceful_timeout,
        proxy_headers=p.settings.trust_proxy_headers,
        log_level="warning",
    )
