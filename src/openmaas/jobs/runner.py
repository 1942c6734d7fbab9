"""One attempt at one job, wherever it runs: the code every executor shares.

``run_attempt`` rebuilds the platform from ``Settings``, calls the kind's
handler with a :class:`JobContext`, and records the outcome itself, fenced by
the attempt id: a stale attempt writes nothing. How the handler's errors end
the attempt:

================================================  =========================  ===========
raised by the handler                             job                        error_code
================================================  =========================  ===========
nothing (returns a dict or ``None``)              ``succeeded``              —
``InvalidInput`` family, or any other 4xx          ``failed``, no retry       its ``code``
``OpenMaaSError`` (bad input, numerical fault:
divergence raises ``InvalidInput`` with details
``reason``); the message is the reason
``MemoryError``                                   ``failed``, no retry       out_of_memory
anything else (``TransientError``, ``OSError``,   re-queued with exponential ``transient``,
``StoreError``, a driver error, a bug)            backoff; ``failed`` with   ``store_error``,
                                                  the exception text once    ``internal_error``
                                                  attempts run out
================================================  =========================  ===========

Error ``details`` are kept in the failed job's ``result`` as ``{"details": ...}``
and the traceback of unexpected errors goes to the job's log.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from openmaas.config import Settings
from openmaas.domain.jobs import SUCCEEDED
from openmaas.errors import OpenMaaSError, StoreError
from openmaas.jobs import kinds, queue
from openmaas.jobs.queue import Claim, StaleAttempt

if TYPE_CHECKING:
    from openmaas.domain.context import Ctx, Platform

log = logging.getLogger("openmaas.jobs")

#: What ``run_attempt`` returns: the job's state after the attempt, or ``"stale"``.
STALE = "stale"

Report = Callable[[dict[str, Any]], None]


def _ignore(_: dict[str, Any]) -> None:
    pass


class JobContext:
    """What a handler gets: its job, the platform, checkpoints, progress and logs.

    Every database write through the context is fenced: once the attempt is
    stale, ``checkpoint``, ``log`` and ``finish`` raise ``StaleAttempt``,
    which unwinds the handler; the runner then exits without writing.
    """

    def __init__(self, settings: Settings, claim: Claim, report: Report = _ignore) -> None:
        self.settings = settings
        self.claim = claim
        self.finished = False
        self._report = report

    @property
    def job_id(self) -> int:
        return self.claim.job_id

    @property
    def attempt(self) -> int:
        return self.claim.attempt

    @property
    def payload(self) -> dict[str, Any]:
        return self.claim.payload

    @cached_property
    def platform(self) -> Platform:
        from openmaas.domain.context import Platform

        return Platform(self.settings)

    def as_creator(self) -> Ctx:
        """A domain context acting as the user who enqueued the job."""
        from openmaas.domain.identity import principal_for_user
        from openmaas.domain.principal import ANONYMOUS

        if self.claim.created_by is None:
            return self.platform.as_(ANONYMOUS)
        return self.platform.as_(principal_for_user(self.platform, self.claim.created_by))

    # Checkpoints --------------------------------------------------------------------
    def resume(self) -> tuple[bytes, dict[str, Any]] | None:
        """The checkpoint this job had when the attempt was claimed, or ``None``."""
        digest = self.claim.checkpoint_digest
        if digest is None:
            return None
        with self.platform.artifacts.open(digest) as f:
            return f.read(), dict(self.claim.checkpoint)

    def checkpoint(self, data: bytes | Iterable[bytes] | BinaryIO, meta: dict[str, Any]) -> str:
        """Store ``data`` as a blob and make it the job's checkpoint, described by ``meta``.

        ``meta`` (JSON, e.g. ``{"epoch": 3}``) is what the next attempt sees
        with ``resume()`` and what users see on the job. Returns the digest.
        """
        chunks = [data] if isinstance(data, bytes | bytearray | memoryview) else data
        digest = self.platform.artifacts.put_stream(chunks).digest
        if not queue.save_checkpoint(self.platform.store, self.claim, digest, meta):
            raise StaleAttempt(self.claim)
        return digest

    # Reporting ----------------------------------------------------------------------
    def progress(self, values: dict[str, Any]) -> None:
        """Report progress (JSON); the worker stores the latest with its next heartbeat."""
        self._report({"progress": values})

    def log(self, message: str, level: str = "info") -> None:
        """Append a line to the job's log (users read it with ``jobs.logs``)."""
        if not queue.log(self.platform.store, self.claim, message, level):
            raise StaleAttempt(self.claim)

    # Results ------------------------------------------------------------------------
    @contextmanager
    def finish(self, result: dict[str, Any] | None = None) -> Iterator[Session]:
        """A write transaction that also marks the job succeeded, or writes nothing.

        Write results in the block; ``result`` (a dict, which the block may
        still fill in) becomes the job's result. The job row is locked first,
        so a stale attempt fails before doing work::

            result = {}
            with ctx.finish(result) as s:
                s.add(row); s.flush(); result["row_id"] = row.id
        """
        if self.finished:
            raise RuntimeError(f"job {self.job_id} is already finished")
        with self.platform.store.write() as s:
            queue.hold(s, self.claim)
            yield s
            queue.finish(s, self.claim, SUCCEEDED, _checked_result(result))
        self.finished = True

    def close(self) -> None:
        if "platform" in self.__dict__:
            self.platform.store.dispose()


def _checked_result(result: object) -> dict[str, Any] | None:
    if result is not None and not isinstance(result, dict):
        raise TypeError(f"a job handler returns a dict or None, not {type(result).__name__}")
    try:
        json.dumps(result)
    except (TypeError, ValueError) as e:
        raise TypeError(f"the job's result is not JSON: {e}") from e
    return result


def classify(e: BaseException) -> tuple[bool, str, str, dict[str, Any]]:
    """``(retry, error_code, message, details)`` for an exception a handler raised."""
    if isinstance(e, OpenMaaSError) and e.status < 500:
        return False, e.code, e.message, e.details
    if isinstance(e, MemoryError):
        return False, "out_of_memory", "the job ran out of memory", {}
    if isinstance(e, kinds.TransientError):
        code = "transient"
    elif isinstance(e, StoreError | SQLAlchemyError):
        code = "store_error"
    else:
        code = "internal_error"
    text = str(e) or "no message"
    return True, code, f"{type(e).__name__}: {text}", {}


def _record_failure(ctx: JobContext, e: BaseException) -> str:
    retry, code, message, details = classify(e)
    store, claim, settings = ctx.platform.store, ctx.claim, ctx.settings
    if not isinstance(e, OpenMaaSError):
        tb = "".join(traceback.format_exception(e))
        queue.log(store, claim, tb[-20_000:], "error")
    with store.write() as s:
        return queue.fail_or_retry(
            s,
            claim,
            message,
            code,
            retry=retry,
            backoff_s=settings.job_retry_backoff_s,
            max_backoff_s=settings.job_retry_backoff_max_s,
            details=details,
        )


def run_attempt(
    settings: Settings, claim: Claim, handler_ref: str, report: Report = _ignore
) -> str:
    """Run one attempt and record its outcome; returns the job's state or ``"stale"``.

    Errors while recording (the database is unreachable) propagate: the
    executor reports the attempt as crashed and the worker retries recording.
    """
    ctx = JobContext(settings, claim, report)
    try:
        try:
            handler = kinds.resolve(handler_ref)
            result = handler(ctx)
            if not ctx.finished:
                with ctx.platform.store.write() as s:
                    queue.finish(s, claim, SUCCEEDED, _checked_result(result))
            return SUCCEEDED
        except StaleAttempt:
            log.info(
                "job %s attempt %s is stale; its results are dropped", claim.job_id, claim.attempt
            )
            return STALE
        except Exception as e:
            try:
                return _record_failure(ctx, e)
            except StaleAttempt:
                return STALE
    finally:
        ctx.close()
