"""``openmaas algo``: the algorithm catalog and its documented hyperparameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer

from openmaas.cli import output
from openmaas.cli.options import Json
from openmaas.cli.session import client
from openmaas.cli.tasks import TaskType

app = typer.Typer(
    help="The algorithm catalog: what can be trained, on which task types, with which "
    "hyperparameters.",
    no_args_is_help=True,
)

_TYPES = {"integer": "int", "number": "float", "boolean": "bool", "string": "str"}


def type_name(hp: Mapping[str, Any]) -> str:
    """A hyperparameter's JSON-schema type in Python words: ``int``, ``float or null``."""
    kinds = hp.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return " or ".join(_TYPES.get(str(k), str(k)) for k in kinds)


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def allowed(hp: Mapping[str, Any]) -> str:
    """What values are allowed: ``[1, 5000] (log)``, ``gini | entropy``, or empty."""
    if hp.get("enum") is not None:
        return " | ".join(str(c) for c in hp["enum"])
    low, high = hp.get("minimum"), hp.get("maximum")
    if low is None and high is None:
        return ""
    if low is not None and high is not None:
        text = f"[{_number(low)}, {_number(high)}]"
    elif low is not None:
        text = f">= {_number(low)}"
    else:
        text = f"<= {_number(high)}"
    return text + (" (log)" if hp.get("log") else "")


def default(hp: Mapping[str, Any]) -> str:
    value = hp.get("default")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return _number(value)


HYPERPARAMETER_COLUMNS: list[output.Column] = [
    ("name", "name"),
    ("type", type_name),
    ("default", default),
    ("allowed", allowed),
    ("tuned", "tunable"),
    ("description", "description"),
]


@app.command("list")
def list_(
    ctx: typer.Context,
    task_type: Annotated[
        TaskType | None,
        typer.Option("--task-type", "-t", help="Only algorithms for this task type."),
    ] = None,
    json: Json = False,
) -> None:
    """List the algorithms you can train."""
    algorithms = client(ctx).algorithms.list(task_type)
    if json:
        output.emit_json(algorithms)
        return
    columns: list[output.Column] = [
        ("name", "name"),
        ("task types", "task_types"),
        ("iterative", "iterative"),
        ("warm start", "warm_start"),
        ("description", "description"),
    ]
    output.table(algorithms, columns, empty="No algorithms.")


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="Algorithm name.", show_default=False)
    ],
    json: Json = False,
) -> None:
    """Show an algorithm and document its hyperparameters."""
    algorithm = client(ctx).algorithms.get(name)
    if json:
        output.emit_json(algorithm)
        return
    output.details(
        algorithm,
        [
            ("name", "name"),
            ("task types", "task_types"),
            ("iterative", "iterative"),
            ("warm start", "warm_start"),
            ("description", "description"),
        ],
    )
    output.table(
        algorithm.hyperparameters,
        HYPERPARAMETER_COLUMNS,
        title="Hyperparameters (--param NAME=VALUE; the seed is --seed)",
        empty="No hyperparameters.",
    )
