"""The executor interface: where a worker's job attempts run.

An executor starts attempts, reports on them and stops them. It never
decides a job's state: the attempt itself runs ``openmaas.jobs.runner.
run_attempt`` (the same code on every executor) and records what its handler
did, fenced by attempt id; the worker records only what the attempt could not
(it was killed, or died).

Contract, which ``openmaas.testing.jobs.ExecutorSuite`` checks on every executor:

* ``start(claim, handler_ref, memory_limit_mb=None)`` returns promptly,
  before the handler finishes, with a ``Handle``. The attempt runs
  ``run_attempt(settings, claim, handler_ref, report)`` in isolation from the
  worker: a crash, a segfault or an out-of-memory kill of the attempt never
  takes the worker down. Threads per attempt are limited as configured.
* ``poll(handle)`` never blocks for long and returns a ``Status``: still
  running, or ended with an exit code (0: the attempt recorded its outcome;
  anything else: it died before it could). ``Status.progress`` is the latest
  progress the attempt reported since the previous poll. When the attempt
  exceeds ``memory_limit_mb`` (memory private to the attempt's processes),
  ``poll`` kills it and returns it ended with ``failure_code="memory_limit"``
  and a ``failure`` message naming the limit.
* ``kill(handle)`` stops the attempt and every process it started, and
  returns once they are gone; killing an ended attempt is a no-op.
* An attempt whose worker process dies stops by itself promptly (it must not
  outlive its worker and race the next attempt; fencing makes such a race
  harmless, but wasteful).
* One executor serves one worker thread; it need not be thread-safe.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

from openmaas.jobs.queue import Claim


class Handle:
    """An attempt started by an executor; executors subclass it with what they track."""

    def __init__(self, claim: Claim) -> None:
        self.claim = claim


@dataclass(frozen=True)
class Status:
    """What ``poll`` saw."""

    running: bool
    exit_code: int | None = None  # once ended: 0 = recorded its outcome; -N = killed by signal N
    failure: str | None = None  # why the executor ended the attempt itself
    failure_code: str | None = None  # e.g. "memory_limit"
    progress: dict[str, Any] | None = None  # the latest reported since the previous poll
    memory_mb: float | None = None
    peak_memory_mb: float | None = None


class Executor(abc.ABC):
    """Runs job attempts; see the module docstring for the contract."""

    @abc.abstractmethod
    def start(self, claim: Claim, handler_ref: str, memory_limit_mb: int | None = None) -> Handle:
        """Start an attempt running ``handler_ref``; returns before it finishes."""

    @abc.abstractmethod
    def poll(self, handle: Handle) -> Status:
        """Report on the attempt without blocking; enforces its memory limit."""

    @abc.abstractmethod
    def kill(self, handle: Handle) -> None:
        """Stop the attempt and all it started; returns once they are gone."""

    def warm_up(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Get ready to start attempts fast (e.g. load heavy modules); called once."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release what the executor holds; attempts still running are the caller's."""
