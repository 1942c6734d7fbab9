"""The worker loop: reap, claim, start, heartbeat, watch, settle.

One ``Worker`` runs up to ``concurrency`` attempts at once, each through its
executor (a local forkserver child by default). Per tick it

1. re-queues jobs whose workers stopped heartbeating (``queue.reap``; every
   worker reaps, losing races is expected);
2. claims jobs for free slots and starts them;
3. polls each attempt: progress, memory (the executor kills an attempt over
   its limit, and the worker fails the job with ``memory_limit``; the limit is
   the worker's, or the job's own ``memory_limit_mb`` payload entry if lower),
   exit;
4. heartbeats every ``heartbeat_s``, extending the lease, and sooner (at most
   every ``PROGRESS_S``) when the attempt reported new progress, so those who
   follow a job see it move about once a second. A heartbeat that
   finds the attempt stale (``alive=False``: say this worker was frozen past
   its lease and the job was re-queued and claimed elsewhere) kills the
   attempt at once; the attempt's own writes are fenced, so nothing it
   produced is kept. ``cancel_requested`` kills the attempt and records
   ``cancelled``. When heartbeats fail (the database is unreachable) for
   longer than the lease, the worker kills the attempt itself: by then it
   has been, or will be, re-queued.
5. settles ended attempts. An attempt that exited normally recorded its own
   outcome; one that died (a signal, a crash) is retried with backoff while
   attempts remain.

Shutdown (``SIGTERM``/``SIGINT`` in ``run_forever``, or ``stop()``): the
worker stops claiming, lets running attempts go on for up to ``drain_s``
seconds (default 0), then kills what still runs and *releases* those jobs:
they are re-queued at once, keep their checkpoints, and the interrupted
attempt does not count against ``max_attempts``. A second signal skips the
drain.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from openmaas.domain.context import Platform
from openmaas.domain.jobs import CANCELLED, FAILED, QUEUED
from openmaas.errors import InvalidInput, StoreError
from openmaas.jobs import queue
from openmaas.jobs.executors.base import Executor, Handle, Status
from openmaas.jobs.kinds import handler_ref, known_kinds
from openmaas.jobs.queue import Claim
from openmaas.store.metadata.tables import Job

log = logging.getLogger("openmaas.jobs")
_DB_ERRORS = (SQLAlchemyError, StoreError)
#: Fewest seconds between two heartbeats that carry new progress (a row update each).
PROGRESS_S = 1.0


def default_worker_id() -> str:
    return f"{socket.gethostname()[:80]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class _Attempt:
    claim: Claim
    handle: Handle
    next_heartbeat: float
    last_heartbeat_ok: float
    progress: dict[str, Any] | None = None
    progress_new: bool = False  # progress reported since the last heartbeat
    beat_at: float = 0.0  # when the last heartbeat was tried
    status: Status | None = None
    own_limit: bool = False  # the job's memory_limit_mb is the limit enforced


def job_memory_limit(payload: dict[str, Any], worker_mb: int | None) -> tuple[int | None, bool]:
    """The memory limit of a job: the lower of the worker's and the job's own
    ``memory_limit_mb`` (either may be ``None``: none); and whether it is the job's."""
    own = payload.get("memory_limit_mb")
    if isinstance(own, bool) or not isinstance(own, int) or own <= 0:
        return worker_mb, False
    if worker_mb is None or own < worker_mb:
        return own, True
    return worker_mb, False


class Worker:
    """Claims and runs jobs of ``kinds`` (default: every registered kind)."""

    def __init__(
        self,
        platform: Platform,
        worker_id: str | None = None,
        kinds: Iterable[str] | None = None,
        concurrency: int | None = None,
        poll_interval: float | None = None,
        lease_s: float | None = None,
        heartbeat_s: float | None = None,
        memory_limit_mb: int | None = None,
        *,
        executor: Executor | None = None,
        drain_s: float = 0.0,
        tick_s: float = 0.05,
    ) -> None:
        s = platform.settings
        self.platform = platform
        self.store = platform.store
        self.worker_id = worker_id or default_worker_id()
        self.kinds = list(kinds) if kinds is not None else known_kinds()
        if not self.kinds:
            raise InvalidInput(
                "this worker knows no job kinds: import the modules that register them"
            )
        self._refs = {kind: handler_ref(kind) for kind in self.kinds}
        self.concurrency = concurrency or s.worker_concurrency
        self.poll_interval = s.worker_poll_s if poll_interval is None else poll_interval
        self.lease_s = s.worker_lease_s if lease_s is None else lease_s
        self.heartbeat_s = s.worker_heartbeat_s if heartbeat_s is None else heartbeat_s
        if not 0 < self.heartbeat_s <= self.lease_s / 2:
            raise InvalidInput(
                f"heartbeat_s ({self.heartbeat_s:g}) must be positive and at most half "
                f"of lease_s ({self.lease_s:g})"
            )
        if memory_limit_mb is None:
            memory_limit_mb = s.worker_memory_mb
        if memory_limit_mb is None:
            from openmaas.jobs.executors.local import default_memory_limit_mb

            memory_limit_mb = default_memory_limit_mb(self.concurrency)
        self.memory_limit_mb = memory_limit_mb or None  # 0: no limit
        if executor is None:
            from openmaas.jobs.executors import make_executor

            executor = make_executor(s)
        self.executor = executor
        self.drain_s = drain_s
        self.tick_s = tick_s
        self.attempts_started = 0
        self._running: list[_Attempt] = []
        self._stopping = False
        self._stop_at = 0.0
        self._next_claim = 0.0
        self._next_reap = 0.0

    # Running -----------------------------------------------------------------------------
    def run_forever(self) -> None:
        """Run until ``SIGTERM``/``SIGINT`` (or ``stop()``), then shut down gracefully."""
        restore = self._install_signals()
        try:
            self.executor.warm_up()
            log.info("worker %s serving %s", self.worker_id, ", ".join(self.kinds))
            self._loop(until_idle=False, deadline=None)
        finally:
            self._release_all()
            restore()
            self.executor.close()

    def run_until_idle(self, timeout: float = 60.0) -> int:
        """Run until no job of our kinds is queued or running here; returns attempts started."""
        started = self.attempts_started
        try:
            self.executor.warm_up()
            self._loop(until_idle=True, deadline=time.monotonic() + timeout)
        finally:
            self._release_all()
        return self.attempts_started - started

    def stop(self) -> None:
        """Stop claiming; running attempts drain for ``drain_s`` and are then released."""
        if self._stopping:
            self._stop_at = float("-inf")  # asked twice: no more draining
        else:
            self._stopping, self._stop_at = True, time.monotonic()

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("worker %s got %s; shutting down", self.worker_id, signal.strsignal(signum))
            self.stop()

        old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for sig, handler in old.items():
                signal.signal(sig, handler)

        return restore

    def _loop(self, *, until_idle: bool, deadline: float | None) -> None:
        while True:
            now = time.monotonic()
            if self._stopping:
                if now - self._stop_at >= self.drain_s:
                    self._release_all()
                if not self._running:
                    return
            else:
                if now >= self._next_reap:
                    self._next_reap = now + self.poll_interval
                    self._guard(self._reap)
                if now >= self._next_claim and not self._fill():
                    self._next_claim = now + self.poll_interval
            for attempt in list(self._running):
                self._watch(attempt)
            if until_idle and not self._running and self._guard(self._nothing_queued):
                return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"worker {self.worker_id} was not idle in time")
            if self._running or self._stopping:
                time.sleep(self.tick_s)
            else:
                time.sleep(max(0.0, min(self._next_claim, self._next_reap) - time.monotonic()))

    def _guard(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except _DB_ERRORS as e:
            log.warning("worker %s: database error: %s", self.worker_id, e)
            return None

    def _reap(self) -> None:
        for job_id, state in queue.reap(self.store):
            log.warning("job %s lost its worker: now %s", job_id, state)

    def _nothing_queued(self) -> bool:
        with self.store.read() as s:
            q = select(Job.id).where(Job.state == QUEUED, Job.kind.in_(self.kinds)).limit(1)
            return s.scalar(q) is None

    # Claiming and starting -------------------------------------------------------------
    def _fill(self) -> bool:
        """Claim and start jobs while slots are free; ``False`` when the queue had none."""
        while len(self._running) < self.concurrency:
            claim = self._guard(
                lambda: queue.claim(self.store, self.worker_id, self.kinds, self.lease_s)
            )
            if claim is None:
                return False
            self._start(claim)
        return True

    def _start(self, claim: Claim) -> None:
        log.info("job %s attempt %s (%s) starting", claim.job_id, claim.attempt, claim.kind)
        t0 = time.monotonic()
        limit, own_limit = job_memory_limit(claim.payload, self.memory_limit_mb)
        try:
            handle = self.executor.start(claim, self._refs[claim.kind], limit)
        except Exception as e:
            log.exception("job %s could not start", claim.job_id)
            self._retry(claim, f"the job could not start: {e}", "start_failed")
            return
        now = time.monotonic()
        self.attempts_started += 1
        # A slow start ate into the lease: heartbeat at the first watch.
        first = now if now - t0 > self.heartbeat_s else now + self.heartbeat_s
        self._running.append(_Attempt(claim, handle, first, t0, own_limit=own_limit))

    # Watching --------------------------------------------------------------------------
    def _watch(self, a: _Attempt) -> None:
        status = self.executor.poll(a.handle)
        a.status = status
        if status.progress is not None:
            a.progress, a.progress_new = status.progress, True
        now = time.monotonic()
        if not status.running:
            self._running.remove(a)
            self._settle(a, status)
        elif now >= a.next_heartbeat or (a.progress_new and now - a.beat_at >= PROGRESS_S):
            self._heartbeat(a)

    def _heartbeat(self, a: _Attempt) -> None:
        now = a.beat_at = time.monotonic()
        progress = dict(a.progress or {})
        if a.status is not None and a.status.memory_mb is not None:
            progress["memory_mb"] = round(a.status.memory_mb, 1)
            progress["peak_memory_mb"] = round(a.status.peak_memory_mb or 0.0, 1)
        try:
            beat = queue.heartbeat(self.store, a.claim, progress or None)
        except _DB_ERRORS as e:
            a.next_heartbeat = now + min(self.heartbeat_s, 1.0)
            if now - a.last_heartbeat_ok <= self.lease_s:
                log.warning("job %s: heartbeat failed: %s", a.claim.job_id, e)
                return
            log.error("job %s: no heartbeat for longer than the lease; stopping it", a.claim.job_id)
            self._drop(a)
            return
        a.last_heartbeat_ok, a.next_heartbeat = now, now + self.heartbeat_s
        a.progress_new = False
        if not beat.alive:
            log.warning(
                "job %s attempt %s no longer owns its job (it finished, or the job was "
                "re-queued or cancelled); stopping it, anything it still writes is dropped",
                a.claim.job_id,
                a.claim.attempt,
            )
            self._drop(a)
        elif beat.cancel_requested:
            self._drop(a)
            won = self._end(
                a.claim,
                queue.finish,
                CANCELLED,
                error="cancelled while running",
                error_code="cancelled",
            )
            log.info("job %s cancelled%s", a.claim.job_id, "" if won else " (it had ended)")

    def _drop(self, a: _Attempt) -> None:
        self.executor.kill(a.handle)
        if a in self._running:
            self._running.remove(a)

    # Settling ----------------------------------------------------------------------------
    def _settle(self, a: _Attempt, status: Status) -> None:
        claim = a.claim
        if self._stopping and (status.exit_code or 0) < 0:  # signalled with us, e.g. by systemd
            if self._end(claim, queue.release):
                log.info("job %s released", claim.job_id)
        elif status.failure_code is not None:
            failure = status.failure
            if status.failure_code == "memory_limit" and a.own_limit:
                failure = f"{failure}; the limit is the job's own memory_limit_mb"
            self._end(claim, queue.finish, FAILED, None, failure, status.failure_code)
            log.warning("job %s failed: %s", claim.job_id, failure)
        elif status.exit_code == 0:  # it recorded its own outcome
            log.info("job %s attempt %s ended", claim.job_id, claim.attempt)
            if self._guard(lambda: queue.owns(self.store, claim)):
                self._retry(
                    claim, "the job process ended without recording an outcome", "internal_error"
                )
        else:
            how = describe_exit(status.exit_code)
            self._retry(claim, f"the job process died ({how})", "process_died")

    def _retry(self, claim: Claim, error: str, code: str) -> None:
        s = self.platform.settings
        self._end(
            claim,
            queue.fail_or_retry,
            error,
            code,
            backoff_s=s.job_retry_backoff_s,
            max_backoff_s=s.job_retry_backoff_max_s,
        )

    def _end(self, claim: Claim, fn: Callable[..., object], *args: Any, **kwargs: Any) -> bool:
        try:
            return queue.transition(self.store, fn, claim, *args, **kwargs)
        except _DB_ERRORS as e:  # the lease will run out and the reaper re-queues it
            log.error("job %s: could not record the attempt's end: %s", claim.job_id, e)
            return False

    def _release_all(self) -> None:
        for a in list(self._running):
            self._drop(a)
            if self._end(a.claim, queue.release):
                log.info("job %s released", a.claim.job_id)
