"""Run attempts on a Ray cluster — NOT IMPLEMENTED YET.

This is a placeholder for the interface slot: constructing ``RayExecutor``
raises. Without Ray installed it names the extra to install
(``pip install 'openmaas[ray]'``); with Ray installed it says the executor is
not implemented, so nobody mistakes it for a working backend. When it is
written it will run the same ``openmaas.jobs.runner.run_attempt`` as a Ray
task and must pass ``openmaas.testing.jobs.ExecutorSuite`` like the local one.
"""

from __future__ import annotations

import importlib.util
from typing import NoReturn

from openmaas.errors import Unavailable
from openmaas.jobs.executors.base import Executor, Handle, Status
from openmaas.jobs.queue import Claim

EXTRA = "openmaas[ray]"


class RayExecutor(Executor):
    """Not implemented: raises ``Unavailable`` on construction."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        if importlib.util.find_spec("ray") is None:
            raise Unavailable(
                f"the Ray executor needs Ray: pip install '{EXTRA}'", details={"extra": EXTRA}
            )
        raise Unavailable(
            "the Ray executor is not implemented yet; use the local executor",
            details={"executor": "ray"},
        )

    def start(self, claim: Claim, handler_ref: str, memory_limit_mb: int | None = None) -> Handle:
        _not_implemented()

    def poll(self, handle: Handle) -> Status:
        _not_implemented()

    def kill(self, handle: Handle) -> None:
        _not_implemented()


def _not_implemented() -> NoReturn:
    raise NotImplementedError("the Ray executor is not implemented yet")
