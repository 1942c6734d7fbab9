"""The algorithm catalog."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from openmaas.domain import algorithms

router = APIRouter(prefix="/algorithms", tags=["algorithms"])


class AlgorithmOut(BaseModel):
    name: str
    description: str
    task_types: list[str]
    iterative: bool
    warm_start: bool
    hyperparameters: list[dict[str, Any]]


@router.get("", response_model=list[AlgorithmOut])
def list_algorithms(task_type: str | None = None) -> list[AlgorithmOut]:
    """Every algorithm (or those supporting ``task_type``), with documented hyperparameters."""
    return [AlgorithmOut(**vars(a)) for a in algorithms.list_algorithms(task_type)]


@router.get("/{name}", response_model=AlgorithmOut)
def get_algorithm(name: str) -> AlgorithmOut:
    return AlgorithmOut(**vars(algorithms.get_algorithm(name)))
