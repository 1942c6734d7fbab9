"""Waiting for something the server works on (runs, scoring and transform jobs)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TypeVar


class Pollable(Protocol):
    @property
    def done(self) -> bool: ...

    @property
    def state(self) -> str: ...


P = TypeVar("P", bound=Pollable)


def poll_until_done(
    fetch: Callable[[], P],
    what: str,
    timeout: float | None = None,
    poll: float = 0.5,
    on_progress: Callable[[P], None] | None = None,
) -> P:
    """``fetch()`` every ``poll`` seconds until the result is done; ``TimeoutError``
    naming ``what`` after ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        current = fetch()
        if on_progress is not None:
            on_progress(current)
        if current.done:
            return current
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise TimeoutError(f"{what} is still {current.state} after {timeout:g} s")
        time.sleep(poll if left is None else min(poll, left))
