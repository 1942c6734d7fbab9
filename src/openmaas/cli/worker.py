"""``openmaas worker``: a process that runs queued jobs (training runs ...) on this machine."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from openmaas.config import Settings


def kind_list(values: list[str] | None) -> list[str] | None:
    """``["run", "a,b"]`` as ``["run", "a", "b"]``; None (every kind) when empty."""
    kinds = [k.strip() for value in values or [] for k in value.split(",") if k.strip()]
    return list(dict.fromkeys(kinds)) or None


def check_kinds(kinds: list[str] | None, modules: list[str]) -> None:
    """Fail fast, as a usage error, on a module that does not import or an unknown kind."""
    from openmaas.jobs.kinds import known_kinds, load_modules

    try:
        load_modules(modules)
    except ImportError as e:
        raise typer.BadParameter(f"cannot import {e.name or e}", param_hint="--module") from e
    unknown = [k for k in kinds or [] if k not in known_kinds()]
    if unknown:
        raise typer.BadParameter(
            f"unknown job kind {', '.join(map(repr, unknown))}; "
            f"registered: {', '.join(known_kinds()) or 'none'}",
            param_hint="--kinds",
        )


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1, help="Jobs run at once. (default: $OPENMAAS_WORKER_CONCURRENCY, else 1)"
        ),
    ] = None,
    memory_mb: Annotated[
        int | None,
        typer.Option(
            "--memory-mb",
            min=0,
            help="Memory limit per job in MB; a job over it fails cleanly; 0: none. "
            "(default: $OPENMAAS_WORKER_MEMORY_MB, else 80% of memory / concurrency)",
        ),
    ] = None,
    kinds: Annotated[
        list[str] | None,
        typer.Option(
            "--kinds",
            "--kind",
            metavar="KIND",
            help="Only run jobs of this kind (e.g. run); repeat or comma-separate. "
            "(default: every kind)",
        ),
    ] = None,
    module: Annotated[
        list[str] | None,
        typer.Option(metavar="MODULE", help="Import this module to register more job kinds."),
    ] = None,
    worker_id: Annotated[
        str | None,
        typer.Option(help="This worker's name in logs and jobs. (default: host-pid-random)"),
    ] = None,
    executor: Annotated[
        Literal["local", "ray"] | None,
        typer.Option(
            help="Run jobs as local processes, or as Ray tasks on a cluster "
            "($OPENMAAS_RAY_ADDRESS; needs the ray extra). "
            "(default: $OPENMAAS_WORKER_EXECUTOR, else local)",
        ),
    ] = None,
    drain: Annotated[
        float,
        typer.Option(
            min=0,
            help="On SIGTERM or Ctrl+C, let running jobs go on this many seconds, then "
            "hand them back to the queue.",
        ),
    ] = 0.0,
) -> None:
    """Run queued jobs until SIGTERM or Ctrl+C (start several for more throughput).

    Uses the stores configured by OPENMAAS_* (the server's); the database schema
    must be current (`openmaas db upgrade`).
    """
    from openmaas.jobs import cli_entry

    modules = list(module or [])
    selected = kind_list(kinds)
    check_kinds(selected, modules)
    code = cli_entry.run_worker(
        Settings(),
        concurrency,
        worker_id=worker_id,
        kinds=selected,
        modules=modules,
        memory_limit_mb=memory_mb,
        drain_s=drain,
        executor=executor,
    )
    raise typer.Exit(code)
