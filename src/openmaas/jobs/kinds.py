"""Job kinds: the name a job row carries, mapped to the handler that runs it.

A kind is registered by the module that defines its handler, at import::

    def train(ctx: JobContext) -> dict | None: ...
    register_kind("run", train)

The registry stores a *reference* (``"module:qualname"``), not the function:
an attempt runs in another process (a forkserver child now, a Ray task later)
that imports the module from the reference, so handlers must be module-level
functions. Workers import ``KIND_MODULES`` (plus any they are given) to learn
which kinds exist; they only claim kinds registered in their process.

Handlers raise to fail (see ``openmaas.jobs.runner`` for how errors map to
retry or failure) and raise :class:`TransientError` to ask for a retry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from openmaas.domain.jobs import MAX_KIND_LENGTH

if TYPE_CHECKING:
    from openmaas.jobs.runner import JobContext

Handler = Callable[["JobContext"], "dict[str, Any] | None"]

#: Modules a worker imports to register the platform's own job kinds.
KIND_MODULES: tuple[str, ...] = (
    "openmaas.jobs.handlers.run",
    "openmaas.jobs.handlers.score",
    "openmaas.jobs.handlers.transform",
)

_KINDS: dict[str, str] = {}


class TransientError(Exception):
    """A failure worth retrying as is (a flaky network, a busy service).

    The attempt is re-queued with exponential backoff while attempts remain.
    """


def _ref_of(handler: Handler | str) -> str:
    if isinstance(handler, str):
        head, _, tail = handler.partition(":")
        if not head or not tail:
            raise ValueError(f"a handler reference is 'module:function', got {handler!r}")
        return handler
    module = str(getattr(handler, "__module__", None) or "")
    qualname = str(getattr(handler, "__qualname__", ""))
    if not module or module == "__main__" or "<" in qualname:
        raise ValueError(
            f"job handler {handler!r} must be a module-level function of an importable module"
        )
    return f"{module}:{qualname}"


def register_kind(name: str, handler: Handler | str) -> None:
    """Register ``handler`` (a function or ``"module:function"``) for jobs of kind ``name``."""
    if not name or len(name) > MAX_KIND_LENGTH:
        raise ValueError(f"job kind must be 1 to {MAX_KIND_LENGTH} characters, got {name!r}")
    ref = _ref_of(handler)
    if _KINDS.get(name, ref) != ref:
        raise ValueError(f"job kind {name!r} is already registered to {_KINDS[name]}")
    _KINDS[name] = ref


def known_kinds() -> list[str]:
    return sorted(_KINDS)


def handler_ref(name: str) -> str:
    """The ``"module:function"`` reference of kind ``name``'s handler."""
    try:
        return _KINDS[name]
    except KeyError:
        known = ", ".join(known_kinds()) or "none"
        raise LookupError(f"unknown job kind {name!r}; registered kinds: {known}") from None


def resolve(ref: str) -> Handler:
    """Import and return the handler a reference names."""
    module, _, qualname = _ref_of(ref).partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"job handler {ref} is not callable")
    return obj  # type: ignore[no-any-return]


def load_modules(modules: Iterable[str] = (), *, builtin: bool = True) -> None:
    """Import ``modules`` (and ``KIND_MODULES`` if ``builtin``) so their kinds are registered."""
    for module in (*(KIND_MODULES if builtin else ()), *modules):
        importlib.import_module(module)
