"""The algorithm catalog as users see it: names, task types, documented hyperparameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openmaas.errors import InvalidInput
from openmaas.ml.catalog import registry
from openmaas.ml.catalog.base import Algorithm
from openmaas.ml.tasks import TaskType

TASK_TYPES: tuple[str, ...] = TaskType.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class AlgorithmInfo:
    name: str
    description: str
    task_types: list[str]
    iterative: bool
    warm_start: bool
    hyperparameters: list[dict[str, Any]]


def _info(cls: type[Algorithm]) -> AlgorithmInfo:
    return AlgorithmInfo(
        name=cls.name,
        description=cls.description,
        task_types=sorted(cls.task_types),
        iterative=cls.iterative,
        warm_start=cls.warm_start_capable,
        hyperparameters=[
            {"name": h.name, **h.to_json_schema(), "tunable": h.tunable, "log": h.log}
            for h in cls.hyperparameters()
        ],
    )


def list_algorithms(task_type: str | None = None) -> list[AlgorithmInfo]:
    """Public: the catalog is the same for everyone."""
    if task_type is not None and task_type not in TASK_TYPES:
        raise InvalidInput(
            f"unknown task type {task_type!r}; valid: {', '.join(TASK_TYPES)}",
            details={"field": "task_type"},
        )
    return [_info(cls) for cls in registry.list_algorithms(task_type)]


def get_algorithm(name: str) -> AlgorithmInfo:
    return _info(registry.get_algorithm(name))
