"""The executor interface: the contract suite on the local executor (Ray's: test_ray_executor)."""

from __future__ import annotations

import os

import pytest

from openmaas.config import Settings
from openmaas.jobs.executors.base import Executor, Handle, Status
from openmaas.jobs.executors.local import LocalExecutor, default_memory_limit_mb, process_tree
from openmaas.jobs.queue import Claim
from openmaas.testing.jobs import ExecutorSuite


class TestLocalExecutor(ExecutorSuite):
    """Runs the contract with the ``platform`` and ``executor`` fixtures of this folder."""


class HalfExecutor(Executor):
    def start(self, claim: Claim, handler_ref: str, memory_limit_mb: int | None = None) -> Handle:
        return Handle(claim)

    def poll(self, handle: Handle) -> Status:
        return Status(running=False, exit_code=0)


def test_a_half_implemented_executor_cannot_be_made() -> None:
    with pytest.raises(TypeError, match=r"abstract method '?kill"):
        HalfExecutor()  # type: ignore[abstract]


def test_local_helpers() -> None:
    assert process_tree(os.getpid())[0] == os.getpid()
    whole = default_memory_limit_mb(1)
    assert whole is not None
    assert default_memory_limit_mb(2) == pytest.approx(whole / 2, abs=1)
    executor = LocalExecutor(Settings(worker_threads=2), preload=[])
    assert (executor.threads, executor.preload) == (2, [])
