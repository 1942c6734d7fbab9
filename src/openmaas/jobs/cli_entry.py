"""What ``openmaas worker`` calls: build the platform, load job kinds, run a worker."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from openmaas.config import Settings
from openmaas.jobs.kinds import KIND_MODULES, load_modules


def run_worker(
    settings: Settings,
    concurrency: int | None = None,
    *,
    worker_id: str | None = None,
    kinds: Sequence[str] | None = None,
    modules: Sequence[str] = (),
    memory_limit_mb: int | None = None,
    lease_s: float | None = None,
    heartbeat_s: float | None = None,
    poll_interval: float | None = None,
    preload: Sequence[str] | None = None,
    drain_s: float = 0.0,
    builtin_kinds: bool = True,
    executor: str | None = None,
) -> int:
    """Serve jobs until ``SIGTERM``/``SIGINT``; returns the process exit code (0).

    ``modules`` register extra job kinds, besides the platform's own
    (``kinds.KIND_MODULES``, unless ``builtin_kinds`` is false); all are
    preloaded into the forkserver. ``kinds`` restricts the worker to some of
    the registered ones. ``executor`` is ``local`` or ``ray``. Unset options come from
    ``settings`` (``OPENMAAS_WORKER_*``). The database schema must be current
    (``openmaas db upgrade``).
    """
    from openmaas.domain.context import Platform
    from openmaas.jobs.executors import make_executor
    from openmaas.jobs.worker import Worker

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    load_modules(modules, builtin=builtin_kinds)
    base = settings.worker_preload if preload is None else preload
    preload = [*base, *(KIND_MODULES if builtin_kinds else ()), *modules]
    platform = Platform(settings)
    worker = Worker(
        platform,
        worker_id=worker_id,
        kinds=kinds,
        concurrency=concurrency,
        poll_interval=poll_interval,
        lease_s=lease_s,
        heartbeat_s=heartbeat_s,
        memory_limit_mb=memory_limit_mb,
        executor=make_executor(settings, executor, preload=preload),
        drain_s=drain_s,
    )
    try:
        worker.run_forever()
    finally:
        platform.store.dispose()
    return 0
