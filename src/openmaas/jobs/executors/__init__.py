"""Where job attempts run: ``base.Executor`` and its ``local`` and ``ray`` backends."""

from __future__ import annotations

from collections.abc import Sequence

from openmaas.config import Settings
from openmaas.jobs.executors.base import Executor

__all__ = ["make_executor"]


def make_executor(
    settings: Settings, name: str | None = None, *, preload: Sequence[str] | None = None
) -> Executor:
    """The executor ``name`` (default: ``settings.worker_executor``) with forkservers
    preloading ``preload`` (default: ``settings.worker_preload``)."""
    name = name or settings.worker_executor
    modules = None if preload is None else list(preload)
    if name == "ray":
        from openmaas.jobs.executors.ray import RayExecutor

        return RayExecutor(settings, preload=modules)
    from openmaas.jobs.executors.local import LocalExecutor

    return LocalExecutor(settings, preload=modules)
