"""Names users give to things: checked once here, so no hostile name gets in."""

from __future__ import annotations

import re

from openmaas.errors import InvalidInput

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}$")


def check_name(value: str, field: str = "name") -> str:
    """Letters, digits, ``_ . -``; starts with a letter or digit; at most 64 chars."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        raise InvalidInput(
            f"invalid {field} {value!r}: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit",
            details={"field": field},
        )
    return value


def check_tags(tags: list[str]) -> list[str]:
    out: list[str] = []
    for tag in tags:
        tag = tag.strip().lower()
        if not _TAG.fullmatch(tag):
            raise InvalidInput(
                f"invalid tag {tag!r}: use 1-64 letters, digits or '_ . : + -'",
                details={"field": "tags"},
            )
        if tag not in out:
            out.append(tag)
    if len(out) > 50:
        raise InvalidInput("at most 50 tags", details={"field": "tags"})
    return out
