"""A model's input signature (named, typed columns) and output description.

Column kinds are the dataset kinds (``numeric``, ``categorical``, ``boolean``,
``datetime``, ``text``), so a signature taken from a training dataset and one
declared by hand mean the same thing. MLflow's column types map onto them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from openmaas.errors import InvalidInput
from openmaas.ml.data.schema import KINDS

MAX_COLUMNS = 10_000

# MLflow's ColSpec types -> dataset kinds.
MLFLOW_TYPES = {
    "double": "numeric",
    "float": "numeric",
    "long": "numeric",
    "integer": "numeric",
    "boolean": "boolean",
    "string": "text",
    "datetime": "datetime",
}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = "numeric"


@dataclass(frozen=True)
class Signature:
    inputs: tuple[Column, ...]
    outputs: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def names(self) -> list[str]:
        return [c.name for c in self.inputs]

    @cached_property
    def name_set(self) -> frozenset[str]:
        return frozenset(c.name for c in self.inputs)

    @property
    def numeric(self) -> bool:
        """Every input is a number (or boolean): requests go straight into a float matrix."""
        return all(c.kind in ("numeric", "boolean") for c in self.inputs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [{"name": c.name, "kind": c.kind} for c in self.inputs],
            "outputs": self.outputs,
        }

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "signature") -> Signature:
        if not isinstance(data, dict) or not isinstance(data.get("inputs"), list):
            raise InvalidInput(
                f"{where} must be an object with an 'inputs' list of {{name, kind}}",
                details={"field": where},
            )
        outputs = data.get("outputs") or {}
        if not isinstance(outputs, dict):
            raise InvalidInput(f"{where}.outputs must be an object", details={"field": where})
        return cls(_columns(data["inputs"], where), outputs)

    @classmethod
    def of_names(cls, names: Iterable[str], outputs: dict[str, Any] | None = None) -> Signature:
        return cls(_columns([{"name": n} for n in names], "signature"), outputs or {})

    @classmethod
    def from_mlflow(cls, inputs: str | list[Any], outputs: dict[str, Any]) -> Signature:
        """MLflow's ``signature.inputs`` (a JSON string of ColSpecs in ``MLmodel``)."""
        try:
            specs = json.loads(inputs) if isinstance(inputs, str) else inputs
        except ValueError:
            raise InvalidInput("MLmodel: signature.inputs is not JSON") from None
        if not isinstance(specs, list):
            raise InvalidInput("MLmodel: signature.inputs must be a list of columns")
        cols = []
        for i, spec in enumerate(specs):
            if not isinstance(spec, dict) or "name" not in spec:
                raise InvalidInput(
                    f"MLmodel: input {i} has no name; only column-based signatures are supported"
                )
            kind = MLFLOW_TYPES.get(str(spec.get("type")))
            if kind is None:
                raise InvalidInput(
                    f"MLmodel: input {spec['name']!r} has unsupported type {spec.get('type')!r}"
                )
            cols.append({"name": spec["name"], "kind": kind})
        return cls(_columns(cols, "MLmodel signature"), outputs)


def _columns(items: Sequence[Any], where: str) -> tuple[Column, ...]:
    if not items:
        raise InvalidInput(f"{where} names no input column", details={"field": where})
    if len(items) > MAX_COLUMNS:
        raise InvalidInput(f"{where} has more than {MAX_COLUMNS} inputs", details={"field": where})
    out: list[Column] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidInput(f"{where}: input {i} must be an object", details={"field": where})
        name, kind = item.get("name"), item.get("kind", "numeric")
        if not isinstance(name, str) or not name or len(name) > 256:
            raise InvalidInput(
                f"{where}: input {i} needs a name of 1-256 characters", details={"field": where}
            )
        if kind not in KINDS:
            raise InvalidInput(
                f"{where}: input {name!r} has kind {kind!r}; use one of {', '.join(KINDS)}",
                details={"field": where},
            )
        if name in seen:
            raise InvalidInput(f"{where}: input {name!r} appears twice", details={"field": where})
        seen.add(name)
        out.append(Column(name, kind))
    return tuple(out)
