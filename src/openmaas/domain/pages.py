"""Pagination shared by every list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from openmaas.errors import InvalidInput

T = TypeVar("T")
MAX_LIMIT = 1000
MAX_ID = 2**31 - 1  # ids are 32-bit INTEGER columns on PostgreSQL


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def page_of(items: list[T], total: int, limit: int, offset: int) -> Page[T]:
    return Page(items=items, total=total, limit=limit, offset=offset)


def check_window(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}", details={"field": "limit"})
    if offset < 0:
        raise InvalidInput("offset must be 0 or more", details={"field": "offset"})
