"""Rendering: Rich tables for people, JSON for scripts, progress bars on stderr.

Data goes to stdout; progress, warnings and errors go to stderr, so that
``openmaas ... --json | jq`` always sees exactly one JSON document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from openmaas.client import Record

Getter = str | Callable[[Mapping[str, Any]], Any]
Column = tuple[str, Getter]
ProgressFn = Callable[[int, int | None], None]

_ISO_TIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2}|Z)?$"
)


def stdout() -> Console:
    return Console(stderr=False, highlight=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def plain(data: Any) -> Any:
    """SDK records (and lists or dicts of them) as plain JSON-ready values."""
    if isinstance(data, Record):
        return data.to_dict()
    if isinstance(data, list | tuple):
        return [plain(x) for x in data]
    if isinstance(data, dict):
        return {k: plain(v) for k, v in data.items()}
    return data


def emit_json(data: Any) -> None:
    """Print ``data`` as one JSON document on stdout."""
    typer.echo(json.dumps(plain(data), indent=2, default=str, ensure_ascii=False))


def cell(value: Any) -> str:
    """A value as a short table cell: times to the minute, lists comma-separated."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={cell(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    m = _ISO_TIME.match(text)
    if m is None:
        return text
    if m.group(5):  # a moment: shown in the local time zone
        moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone()
        return moment.strftime("%Y-%m-%d %H:%M")
    return f"{m.group(1)} {m.group(2)}"


def _get(row: Mapping[str, Any], getter: Getter) -> Any:
    return getter(row) if callable(getter) else row.get(getter)


def table(
    rows: Sequence[Mapping[str, Any] | Record],
    columns: Sequence[Column],
    *,
    title: str | None = None,
    empty: str = "Nothing to show.",
) -> None:
    """Print rows as a table with one column per ``(header, key or function)``."""
    console = stdout()
    if not rows:
        console.print(Text(empty, style="dim"))
        return
    t = Table(title=Text(title) if title else None, title_justify="left", header_style="bold")
    for header, _ in columns:
        t.add_column(header, overflow="fold")
    for row in rows:
        data = row.to_dict() if isinstance(row, Record) else row
        t.add_row(*(Text(cell(_get(data, getter))) for _, getter in columns))
    console.print(t)


def details(
    data: Mapping[str, Any] | Record,
    fields: Sequence[Column] | None = None,
    *,
    title: str | None = None,
) -> None:
    """Print one object as aligned ``field  value`` lines."""
    row = data.to_dict() if isinstance(data, Record) else data
    pairs = [(label, cell(_get(row, getter))) for label, getter in fields or [(k, k) for k in row]]
    width = max((len(label) for label, _ in pairs), default=0)
    console = stdout()
    if title:
        console.print(Text(title, style="bold underline"))
    for label, value in pairs:
        console.print(Text.assemble((label.ljust(width), "bold"), "  ", value), soft_wrap=True)


def success(message: str) -> None:
    stdout().print(Text(message, style="green"), soft_wrap=True)


def note(message: str) -> None:
    """A remark for people, on stderr."""
    stderr().print(Text(message, style="yellow"), soft_wrap=True)


def error(message: str) -> None:
    stderr().print(Text(f"error: {message}", style="red"), soft_wrap=True)


@contextmanager
def transfer(
    description: str, *, enabled: bool = True, then: str | None = None
) -> Iterator[ProgressFn | None]:
    """A byte progress bar (size, speed, ETA) on stderr; yields the SDK's ``progress``.

    ``then`` replaces the description once every byte is sent, e.g. while the
    server still reads an uploaded file.
    """
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=stderr(),
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int | None) -> None:
            finished = then is not None and total is not None and done >= total
            bar.update(task, completed=done, total=total, description=then if finished else None)

        yield update
