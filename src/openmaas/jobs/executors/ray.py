"""Run attempts on a Ray cluster: Ray places them, the local executor runs them there.

Each attempt is one Ray task, ``_supervise``, asking for ``threads`` CPUs.
Wherever Ray schedules it, the task does what a worker does on its own
machine: it starts the attempt with a :class:`LocalExecutor` (a fork of a
warm forkserver, one per Ray worker process, so later attempts start fast),
polls it, enforces the memory limit on that node and kills the attempt's
whole process tree when asked. So every promise of the executor contract
holds on a cluster node exactly as it does locally, with the same code.

Between the worker (the Ray driver) and the supervising task:

- progress and memory go through one small actor per executor (a mailbox the
  supervisor posts to and ``poll`` empties), and the task's return value is
  the attempt's final :class:`Status`;
- ``kill`` cancels the task; Ray raises ``KeyboardInterrupt`` in it, and the
  supervisor kills the attempt's process tree before it ends. A task that
  does not end within ``KILL_WAIT_S`` is force-cancelled (its process
  killed; the attempt then exits by itself, below);
- a worker that dies takes its Ray tasks with it (Ray fate-shares tasks with
  their owner), and an attempt whose supervisor is gone exits at once (the
  local executor's liveness pipe): attempts never outlive their worker.

The metadata and artifact stores must be reachable from every node
(PostgreSQL and S3 on a real cluster), as they are from the worker. Set
``OPENMAAS_WORKER_EXECUTOR=ray`` and ``OPENMAAS_RAY_ADDRESS`` (``auto``, or
``ray://host:10001``; empty: a Ray instance private to the worker).
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from typing import Any

from openmaas.config import Settings
from openmaas.errors import Unavailable
from openmaas.jobs.executors.base import Executor, Handle, Status
from openmaas.jobs.queue import Claim

EXTRA = "openmaas[ray]"
#: Exit code of an attempt whose Ray task failed (its node or process died).
EXIT_TASK_FAILED = 70
KILL_WAIT_S = 30.0
MAILBOX_WAIT_S = 5.0
#: Seconds between two looks of ``poll`` at the mailbox (progress is shown per second).
NEWS_EVERY_S = 0.2
#: Seconds between two looks of a supervisor at its attempt.
SUPERVISE_TICK_S = 0.05
_MEMORY_REPORT_S = 1.0

log = logging.getLogger(__name__)


def _ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise Unavailable(
            f"the Ray executor needs Ray: pip install '{EXTRA}'", details={"extra": EXTRA}
        ) from e
    return ray


# On the node ----------------------------------------------------------------------------------


def _supervise(
    settings: Settings,
    claim: Claim,
    handler_ref: str,
    memory_limit_mb: int | None,
    options: dict[str, Any],
    mailbox: Any,
) -> dict[str, Any]:
    """The Ray task of one attempt: run it with the local executor; its final status.

    The forkserver behind the local executor is one per process: it stays warm in this
    Ray worker process for the next attempt Ray runs here.
    """
    from openmaas.jobs.executors.local import LocalExecutor

    executor = LocalExecutor(
        settings, preload=options["preload"], threads=options["threads"],
        memory_check_s=options["check_s"],
    )  # fmt: skip
    handle = executor.start(claim, handler_ref, memory_limit_mb)
    key = _key(claim)
    reported = 0.0
    try:
        while True:
            status = executor.poll(handle)
            now = time.monotonic()
            if not status.running:
                return dataclasses.asdict(status)
            if status.progress is not None or now - reported >= _MEMORY_REPORT_S:
                update = {"memory_mb": status.memory_mb, "peak_memory_mb": status.peak_memory_mb}
                if status.progress is not None:
                    update["progress"] = status.progress
                mailbox.post.remote(key, update)
                reported = now
            time.sleep(SUPERVISE_TICK_S)
    except BaseException:  # cancelled (KeyboardInterrupt), or the task failed
        executor.kill(handle)
        raise


class _Mailbox:
    """What supervisors report between two polls, per attempt (a Ray actor)."""

    def __init__(self) -> None:
        self.news: dict[str, dict[str, Any]] = {}

    def post(self, key: str, update: dict[str, Any]) -> None:
        self.news.setdefault(key, {}).update(update)

    def take(self, key: str) -> dict[str, Any] | None:
        return self.news.pop(key, None)


def _key(claim: Claim) -> str:
    return f"{claim.job_id}/{claim.attempt}"


# In the worker --------------------------------------------------------------------------------


class RayHandle(Handle):
    def __init__(self, claim: Claim, ref: Any) -> None:
        super().__init__(claim)
        self.ref = ref
        self.final: Status | None = None
        self.next_news = 0.0  # when poll next asks the mailbox
        self.memory_mb: float | None = None
        self.peak_memory_mb: float | None = None


class RayExecutor(Executor):
    """Attempts as Ray tasks supervising local attempts; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        address: str | None = None,
        preload: list[str] | None = None,
        threads: int | None = None,
        memory_check_s: float = 0.2,
    ) -> None:
        self.ray = _ray()
        self.settings = settings
        self.address = settings.ray_address if address is None else address
        self.options = {
            "preload": list(settings.worker_preload if preload is None else preload),
            "threads": settings.worker_threads if threads is None else threads,
            "check_s": memory_check_s,
        }
        self._task: Any = None
        self._mailbox: Any = None

    def warm_up(self) -> None:
        """Connect to Ray (or start a private instance) and make the mailbox actor."""
        ray = self.ray
        if not ray.is_initialized():
            # ray.init installs its own SIGTERM handler (exit at once): the worker's own
            # (hand the jobs back to the queue, then exit) stays in charge
            handlers = _signal_handlers()
            ray.init(
                address=self.address or None, namespace="openmaas", include_dashboard=False,
                log_to_driver=False, configure_logging=False,
            )  # fmt: skip
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        if self._task is None:
            cpus = ray.cluster_resources().get("CPU", 0)
            if cpus < self.options["threads"]:
                raise Unavailable(
                    f"the Ray cluster has {cpus:g} CPUs, fewer than the {self.options['threads']} "
                    "threads a job asks for (worker_threads)",
                )
            self._task = ray.remote(_supervise).options(
                num_cpus=self.options["threads"], max_retries=0, retry_exceptions=False
            )
            self._mailbox = ray.remote(_Mailbox).options(num_cpus=0).remote()

    def start(self, claim: Claim, handler_ref: str, memory_limit_mb: int | None = None) -> Handle:
        self.warm_up()
        ref = self._task.remote(
            self.settings, claim, handler_ref, memory_limit_mb, self.options, self._mailbox
        )
        return RayHandle(claim, ref)

    def poll(self, handle: Handle) -> Status:
        h = _ray_handle(handle)
        if h.final is not None:
            return dataclasses.replace(h.final, progress=None)
        done, _ = self.ray.wait([h.ref], timeout=0)
        now = time.monotonic()
        if not done and now < h.next_news:  # the mailbox is a round trip: not every tick
            return Status(running=True, memory_mb=h.memory_mb, peak_memory_mb=h.peak_memory_mb)
        h.next_news = now + NEWS_EVERY_S
        news = self._news(h)
        h.memory_mb = news.get("memory_mb", h.memory_mb)
        h.peak_memory_mb = news.get("peak_memory_mb", h.peak_memory_mb)
        if not done:
            return Status(
                running=True, progress=news.get("progress"), memory_mb=h.memory_mb,
                peak_memory_mb=h.peak_memory_mb,
            )  # fmt: skip
        h.final = self._ended(h)
        self._mailbox.take.remote(_key(h.claim))  # what was posted after the last look
        if h.final.progress is None and news.get("progress") is not None:
            return dataclasses.replace(h.final, progress=news["progress"])
        return h.final

    def kill(self, handle: Handle) -> None:
        h = _ray_handle(handle)
        if h.final is not None:
            return
        ray = self.ray
        ray.cancel(h.ref)  # KeyboardInterrupt in the supervisor: it kills the attempt's tree
        done, _ = ray.wait([h.ref], timeout=KILL_WAIT_S)
        if not done:
            ray.cancel(h.ref, force=True)
            ray.wait([h.ref], timeout=KILL_WAIT_S)
        h.final = Status(
            running=False, exit_code=-int(signal.SIGKILL), memory_mb=h.memory_mb,
            peak_memory_mb=h.peak_memory_mb,
        )  # fmt: skip

    def _news(self, h: RayHandle) -> dict[str, Any]:
        """What the supervisor posted since the last poll ({} if the mailbox is unreachable:
        progress is a report, not state)."""
        try:
            news = self.ray.get(self._mailbox.take.remote(_key(h.claim)), timeout=MAILBOX_WAIT_S)
        except self.ray.exceptions.RayError as e:
            log.warning("job %s: no progress from Ray: %s", h.claim.job_id, e)
            return {}
        return news or {}

    def _ended(self, h: RayHandle) -> Status:
        """The supervisor's final status; if the task itself failed (its node or process
        died), an exit code saying the attempt died, so the worker retries the job."""
        ray = self.ray
        try:
            return Status(**ray.get(h.ref))
        except ray.exceptions.RayError as e:
            log.warning("job %s: its Ray task failed: %s", h.claim.job_id, e)
            return Status(
                running=False, exit_code=EXIT_TASK_FAILED, memory_mb=h.memory_mb,
                peak_memory_mb=h.peak_memory_mb,
            )  # fmt: skip


def _signal_handlers() -> dict[signal.Signals, Any]:
    """This process's SIGTERM and SIGINT handlers, if it may set them (the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}


def _ray_handle(handle: Handle) -> RayHandle:
    assert isinstance(handle, RayHandle), f"not a Ray attempt: {handle!r}"
    return handle
