"""Job kinds: registering handlers by reference and looking them up."""

from __future__ import annotations

import pytest

from openmaas.jobs import kinds
from openmaas.testing import jobs as test_kinds


def test_kinds_register_references_that_other_processes_can_import() -> None:
    assert kinds.handler_ref("test.noop") == "openmaas.testing.jobs:noop"
    assert kinds.resolve("openmaas.testing.jobs:noop") is test_kinds.noop
    kinds.register_kind("test.noop", test_kinds.noop)  # the same again is fine
    assert "test.epochs" in kinds.known_kinds()


def test_register_rejects_what_cannot_work() -> None:
    with pytest.raises(ValueError, match=r"job kind 'test\.noop' is already registered to "):
        kinds.register_kind("test.noop", test_kinds.sleep)
    with pytest.raises(ValueError, match="job kind must be 1 to 32 characters"):
        kinds.register_kind("x" * 33, test_kinds.noop)
    with pytest.raises(ValueError, match="must be a module-level function"):
        kinds.register_kind("test.lambda", lambda ctx: None)
    with pytest.raises(ValueError, match="a handler reference is 'module:function', got 'nope'"):
        kinds.register_kind("test.bad", "nope")


def test_unknown_kinds_name_the_known_ones() -> None:
    with pytest.raises(
        LookupError, match=r"unknown job kind 'nope'; registered kinds: .*test\.noop"
    ):
        kinds.handler_ref("nope")


def test_load_modules_imports_kind_modules() -> None:
    kinds.load_modules(["openmaas.testing.jobs"], builtin=False)
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        kinds.load_modules(["no_such_module"], builtin=False)


def test_the_platform_kinds_are_importable() -> None:
    kinds.load_modules()
    assert "run" in kinds.known_kinds()
