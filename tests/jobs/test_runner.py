"""The attempt runner in-process: outcomes, error mapping, checkpoints and fencing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from openmaas.domain.context import Platform
from openmaas.domain.jobs import FAILED, QUEUED, SUCCEEDED, now
from openmaas.errors import Conflict, InvalidInput, NotFound, StoreError
from openmaas.jobs import queue
from openmaas.jobs.kinds import TransientError, handler_ref
from openmaas.jobs.queue import Claim
from openmaas.jobs.runner import STALE, JobContext, classify, run_attempt
from openmaas.store.metadata.tables import AuditEvent, User
from openmaas.testing.jobs import RESULT_ACTION, add_job, job


def claimed(platform: Platform, kind: str, payload: dict[str, object] | None = None) -> Claim:
    add_job(platform, kind, payload)
    c = queue.claim(platform.store, "w", [kind], 30)
    assert c is not None
    return c


def results(platform: Platform) -> int:
    with platform.store.read() as s:
        q = select(func.count()).where(AuditEvent.action == RESULT_ACTION)
        return s.scalar(q) or 0


def test_a_handler_result_and_its_writes_commit_with_the_finish(platform: Platform) -> None:
    c = claimed(platform, "test.epochs", {"epochs": 2, "epoch_s": 0})
    assert run_attempt(platform.settings, c, handler_ref("test.epochs")) == SUCCEEDED
    row = job(platform, c.job_id)
    assert row.state == SUCCEEDED
    assert row.result == {"started_from": 0, "epochs_run": [1, 2], "attempt": 1, "state": [1, 2]}
    assert results(platform) == 1


def test_a_stale_attempt_writes_nothing(platform: Platform) -> None:
    c = claimed(platform, "test.epochs", {"epochs": 2, "epoch_s": 0})
    queue.reap(platform.store, at=now() + timedelta(seconds=60))  # its lease ran out
    assert run_attempt(platform.settings, c, handler_ref("test.epochs")) == STALE
    row = job(platform, c.job_id)
    assert (row.state, row.checkpoint_digest, row.result) == (QUEUED, None, None)
    assert results(platform) == 0


def test_resume_gets_the_checkpoint_of_the_claim(platform: Platform) -> None:
    c = claimed(platform, "test.epochs", {"epochs": 2, "epoch_s": 0})
    ctx = JobContext(platform.settings, c)
    assert ctx.resume() is None
    digest = ctx.checkpoint(b"[1]", {"epoch": 1})
    ctx.close()
    with platform.store.write() as s:
        queue.release(s, c)
    again = queue.claim(platform.store, "w", ["test.epochs"], 30)
    assert again is not None
    assert again.checkpoint_digest == digest
    assert JobContext(platform.settings, again).resume() == (b"[1]", {"epoch": 1})
    assert run_attempt(platform.settings, again, handler_ref("test.epochs")) == SUCCEEDED
    assert job(platform, c.job_id).result["epochs_run"] == [2]  # type: ignore[index]


def test_invalid_input_fails_with_its_message_and_details(platform: Platform) -> None:
    c = claimed(platform, "test.fail", {"error": "invalid", "message": "loss is nan"})
    assert run_attempt(platform.settings, c, handler_ref("test.fail")) == FAILED
    row = job(platform, c.job_id)
    assert (row.error, row.error_code) == ("loss is nan", "invalid_input")
    assert row.result == {"details": {"reason": "numerical_fault", "epoch": 3}}


def test_a_result_must_be_a_json_dict(platform: Platform) -> None:
    c = claimed(platform, "test.noop")
    ctx = JobContext(platform.settings, c)
    bad: list[int] = [1]
    with (
        pytest.raises(TypeError, match="a job handler returns a dict or None, not list"),
        ctx.finish(bad),  # type: ignore[arg-type]
    ):
        pass
    assert job(platform, c.job_id).state == "running"  # rolled back
    ctx.close()


def test_finish_twice_is_an_error(platform: Platform) -> None:
    c = claimed(platform, "test.noop")
    ctx = JobContext(platform.settings, c)
    with ctx.finish({"a": 1}):
        pass
    with pytest.raises(RuntimeError, match=f"job {c.job_id} is already finished"), ctx.finish():
        pass
    ctx.close()


def test_as_creator_acts_as_the_user_who_enqueued(platform: Platform) -> None:
    with platform.store.write() as s:
        user = User(username="cora")
        s.add(user)
        s.flush()
        user_id = user.id
    add_job(platform, "test.noop", created_by=user_id)
    c = queue.claim(platform.store, "w", ["test.noop"], 30)
    assert c is not None
    ctx = JobContext(platform.settings, c)
    assert ctx.as_creator().principal.username == "cora"
    ctx.close()


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (InvalidInput("bad", details={"x": 1}), (False, "invalid_input", "bad", {"x": 1})),
        (NotFound("gone"), (False, "not_found", "gone", {})),
        (Conflict("busy"), (False, "conflict", "busy", {})),
        (MemoryError(), (False, "out_of_memory", "the job ran out of memory", {})),
        (TransientError("flaky"), (True, "transient", "TransientError: flaky", {})),
        (StoreError("disk"), (True, "store_error", "StoreError: disk", {})),
        (ConnectionError(), (True, "internal_error", "ConnectionError: no message", {})),
        (KeyError("k"), (True, "internal_error", "KeyError: 'k'", {})),
    ],
)
def test_classify(error: BaseException, expected: tuple[object, ...]) -> None:
    assert classify(error) == expected
