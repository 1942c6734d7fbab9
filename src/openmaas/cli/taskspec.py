"""Build a task spec (see :class:`openmaas.ml.tasks.TaskSpec`) from command-line options.

Only what the user gave goes in, so the server's defaults apply to the rest and
its validation names any problem. A spec file is the base; options override it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import typer

Outer = Literal["holdout", "kfold", "time", "group", "predefined_column"]

# The fields of each outer split method, as named in the spec.
OUTER_FIELDS: dict[str, tuple[str, ...]] = {
    "holdout": ("test_fraction",),
    "kfold": ("k",),
    "time": ("time_column", "test_fraction"),
    "group": ("group_column", "k", "test_fraction"),
    "predefined_column": ("column",),
}
_OPTION_OF = {
    "test_fraction": "--test-fraction",
    "k": "--folds",
    "time_column": "--time-column",
    "group_column": "--group-column",
    "column": "--fold-column",
}


@dataclass(frozen=True)
class SpecOptions:
    """The spec-related options of ``task create``; None means "not given"."""

    type: str | None = None
    targets: list[str] | None = None
    metrics: list[str] | None = None
    outer: Outer | None = None
    test_fraction: float | None = None
    folds: int | None = None
    inner_folds: int | None = None
    seed: int | None = None
    group_column: str | None = None
    time_column: str | None = None
    fold_column: str | None = None
    stratify: bool | None = None
    stratify_column: str | None = None
    user_column: str | None = None
    item_column: str | None = None
    rating_column: str | None = None
    implicit: bool | None = None
    series_column: str | None = None
    context_length: int | None = None
    horizon: int | None = None


def read_spec_file(path: Path) -> dict[str, Any]:
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise typer.BadParameter(f"{path} is not valid JSON: {e}", param_hint="--spec-file") from e
    if not isinstance(spec, dict):
        raise typer.BadParameter(f"{path} must hold a JSON object", param_hint="--spec-file")
    return spec


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _outer(o: SpecOptions, task_type: str | None, base: dict[str, Any]) -> dict[str, Any] | None:
    values = _given(
        test_fraction=o.test_fraction,
        k=o.folds,
        time_column=o.time_column,
        group_column=o.group_column,
        column=o.fold_column,
    )
    if task_type == "sequence":
        values.pop("time_column", None)  # set below from the sequence's time column
    method = o.outer or _infer_method(values, task_type, base)
    if method is None:
        return None
    if method == "time" and o.time_column is not None:
        values["time_column"] = o.time_column
    unknown = [k for k in values if k not in OUTER_FIELDS[method]]
    if unknown:
        names = ", ".join(_OPTION_OF[k] for k in unknown)
        raise typer.BadParameter(
            f"{names} does not apply to a {method} split", param_hint="--outer"
        )
    previous = base.get("method") == method
    return {**(base if previous else {}), "method": method, **values}


def _infer_method(
    values: dict[str, Any], task_type: str | None, base: dict[str, Any]
) -> str | None:
    if "column" in values:
        return "predefined_column"
    if "group_column" in values:
        return "group"
    if "time_column" in values or task_type == "sequence":
        return "time"
    if "k" in values:
        return "kfold"
    if values or base:
        return str(base.get("method", "holdout"))
    return None


def build_spec(o: SpecOptions, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The spec posted to the server: ``base`` (a spec file) updated with the options."""
    spec = dict(base or {})
    if o.type is not None:
        spec["type"] = o.type
    if o.targets:
        spec["target_columns"] = list(o.targets)
    if o.metrics:
        spec["metrics"] = list(o.metrics)
    task_type = spec.get("type")
    protocol = dict(spec.get("protocol") or {})
    outer = _outer(o, task_type, dict(protocol.get("outer") or {}))
    if outer is not None:
        protocol["outer"] = outer
    protocol.update(
        _given(
            inner_folds=o.inner_folds,
            seed=o.seed,
            stratify=o.stratify,
            stratify_column=o.stratify_column,
        )
    )
    if protocol:
        spec["protocol"] = protocol
    recommendation = _given(
        user_column=o.user_column,
        item_column=o.item_column,
        rating_column=o.rating_column,
        implicit=o.implicit,
    )
    if recommendation:
        spec["recommendation"] = {**(spec.get("recommendation") or {}), **recommendation}
    sequence = _given(
        series_column=o.series_column,
        time_column=o.time_column if task_type == "sequence" else None,
        context_length=o.context_length,
        horizon=o.horizon,
    )
    if sequence:
        spec["sequence"] = {**(spec.get("sequence") or {}), **sequence}
    if "type" not in spec:
        raise typer.BadParameter("give --type or a --spec-file with a type", param_hint="--type")
    return spec
