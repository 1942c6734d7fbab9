"""Options shared by several commands, so each reads and behaves the same everywhere."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

import typer

Role = Literal["viewer", "contributor", "maintainer", "owner"]
ServiceRole = Literal["viewer", "contributor", "maintainer"]


class Scope(StrEnum):
    """API token scopes (``openmaas.domain.principal.SCOPES``)."""

    read = "read"
    write = "write"
    predict = "predict"


Json = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON on stdout, nothing else.")
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
Limit = Annotated[int, typer.Option(min=1, max=500, help="Show at most this many.")]
Offset = Annotated[int, typer.Option(min=0, help="Skip this many first.")]
ProjectRef = Annotated[
    str, typer.Argument(metavar="PROJECT", help="Project id or ORG/NAME.", show_default=False)
]
RoleOpt = Annotated[Role, typer.Option("--role", "-r", help="Role to give.")]
Scopes = Annotated[
    list[Scope] | None,
    typer.Option(
        "--scope",
        "-s",
        metavar="SCOPE",
        help="Token scope; repeat for several. (default: read, write)",
    ),
]
Days = Annotated[
    float | None,
    typer.Option("--days", min=0, help="Expire after this many days. (default: server's)"),
]


def scopes_or_default(scopes: list[Scope] | None) -> list[str]:
    return [str(s) for s in dict.fromkeys(scopes)] if scopes else ["read", "write"]
