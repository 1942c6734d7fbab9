"""The one catalog of algorithms: names users type, mapped to classes.

Registering a new algorithm is all it takes to plug it in; the engine, the API
and the CLI only ever go through these functions.

Two ways in:

- ``@register`` on the class, in a module that ``openmaas.ml.catalog`` imports
  (the key is the class's ``name``)::

      @register
      class RandomForest(Algorithm):
          name = "random_forest"

- ``register_lazy(name, "package.module:Class")`` for algorithms whose module
  is expensive to import (torch takes ~1.3 s): the module is imported the first
  time the name is looked up and the class (whose ``name`` must match) is
  registered then; decorating it with ``@register`` as well is harmless.
  ``openmaas.ml.catalog.torch`` declares the torch ones this way (without
  importing torch), so the API server starts without it::

      register_lazy("dnn", "openmaas.ml.catalog.torch.dnn:DNN")

Lookups: ``get_algorithm(name)`` (unknown → :class:`InvalidInput` naming the
valid choices), ``algorithm_names()`` (imports nothing),
``list_algorithms(task_type)`` (imports lazy entries). User values:
``check_params`` validates JSON values from the API, ``coerce_params`` first
parses ``k=v`` strings from the CLI, and ``check_supports`` checks an
algorithm against a task type.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, TypeVar

from openmaas.errors import InvalidInput
from openmaas.ml.catalog.base import Algorithm, HyperParameter

__all__ = [
    "algorithm_names",
    "check_params",
    "check_supports",
    "coerce_params",
    "get_algorithm",
    "list_algorithms",
    "register",
    "register_lazy",
]

A = TypeVar("A", bound=type[Algorithm])

_CLASSES: dict[str, type[Algorithm]] = {}
_LAZY: dict[str, str] = {}  # name -> "module:Class", until first use


def register(cls: A) -> A:
    """Class decorator: add ``cls`` to the catalog under ``cls.name``.

    Registering the same class twice is a no-op (modules may be reloaded); a
    different class under a taken name is a programming error.
    """
    name = cls.name
    current = _CLASSES.get(name)
    if current is not None and current.__qualname__ != cls.__qualname__:
        raise ValueError(f"algorithm name {name!r} is taken by {current.__qualname__}")
    _CLASSES[name] = cls
    return cls


def register_lazy(name: str, target: str) -> None:
    """Declare ``name`` as ``"package.module:Class"``, imported on first lookup."""
    if ":" not in target:
        raise ValueError(f"lazy target must look like 'package.module:Class'; got {target!r}")
    if name not in _CLASSES:
        _LAZY[name] = target


def algorithm_names() -> list[str]:
    """Every registered name, sorted, without importing lazy entries."""
    return sorted({*_CLASSES, *_LAZY})


def get_algorithm(name: str) -> type[Algorithm]:
    """The class registered as ``name``; an unknown name lists the valid ones."""
    if name in _CLASSES:
        return _CLASSES[name]
    if name in _LAZY:
        return _load_lazy(name)
    valid = algorithm_names()
    raise InvalidInput(
        f"unknown algorithm {name!r}; valid: {', '.join(valid)}",
        details={"algorithm": name, "valid": valid},
    )


def _load_lazy(name: str) -> type[Algorithm]:
    target = _LAZY[name]
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Algorithm)) or cls.name != name:
        raise ValueError(f"{target} is not an Algorithm named {name!r}")
    register(cls)
    del _LAZY[name]
    return cls


def list_algorithms(task_type: str | None = None) -> list[type[Algorithm]]:
    """Every algorithm (sorted by name), or those supporting ``task_type``."""
    classes = [get_algorithm(n) for n in algorithm_names()]
    return [c for c in classes if task_type is None or task_type in c.task_types]


def check_supports(cls: type[Algorithm], task_type: str) -> None:
    """InvalidInput unless ``cls`` declares ``task_type``."""
    if task_type not in cls.task_types:
        raise InvalidInput(
            f"algorithm {cls.name!r} does not support task type {task_type!r}; "
            f"it supports: {', '.join(sorted(cls.task_types))}",
            details={"algorithm": cls.name, "task_type": task_type},
        )


def _declared(cls: type[Algorithm], params: Mapping[str, Any]) -> dict[str, HyperParameter]:
    declared = {h.name: h for h in cls.hyperparameters()}
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise InvalidInput(
            f"unknown hyperparameter {unknown[0]!r} for algorithm {cls.name!r}; "
            f"valid: {', '.join(declared)}",
            details={"algorithm": cls.name, "parameter": unknown[0], "valid": list(declared)},
        )
    return declared


def check_params(cls: type[Algorithm], params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate user hyperparameters (JSON types); return them merged over the defaults.

    The result holds every hyperparameter, so a stored run records exactly
    what it trained with even if a default changes later. ``task_type`` is
    not a hyperparameter: the engine sets it from the task.
    """
    declared = _declared(cls, params)
    out = {h.name: h.default for h in declared.values()}
    for key, value in params.items():
        out[key] = declared[key].check(value, algorithm=cls.name)
    return out


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def coerce_params(cls: type[Algorithm], raw: Mapping[str, str]) -> dict[str, Any]:
    """Parse CLI ``k=v`` strings by each hyperparameter's type, then :func:`check_params`.

    ``none``/``null`` give ``None`` where the hyperparameter allows it; booleans
    accept true/false, 1/0, yes/no, on/off. A string that does not parse is
    reported like a wrong type, naming the parameter and what is allowed.
    """
    declared = _declared(cls, raw)
    parsed: dict[str, Any] = {}
    for key, text in raw.items():
        parsed[key] = _parse(declared[key], text.strip())
    return check_params(cls, parsed)


def _parse(hp: HyperParameter, text: str) -> Any:
    lowered = text.lower()
    if hp.nullable and lowered in ("none", "null"):
        return None
    try:
        if hp.type == "int":
            return int(text)
        if hp.type == "float":
            return float(text)
    except ValueError:
        return text  # check() reports it with the allowed values
    if hp.type == "bool":
        return True if lowered in _TRUE else False if lowered in _FALSE else text
    return text
