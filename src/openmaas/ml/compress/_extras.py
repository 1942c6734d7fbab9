"""Importing the optional ONNX stack, naming the extra to install when it is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from openmaas.errors import Unavailable

EXTRA = "openmaas[onnx]"


def require(module: str) -> ModuleType:
    """``import module``, or :class:`Unavailable` saying which extra brings it.

    The ONNX packages are an optional extra: the platform runs without them, and
    only compression (and ONNX serving) needs them.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise Unavailable(
            f"model compression needs {module.partition('.')[0]}: pip install '{EXTRA}'",
            details={"extra": EXTRA, "module": module},
        ) from e
