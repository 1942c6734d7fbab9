"""What the SDK returns: thin typed views over the server's JSON.

The server's OpenAPI schema is the source of truth for fields; these classes
type the ones code relies on and give attribute access to the rest, so a new
server field never breaks an older SDK.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar


class Record:
    """A server object: ``rec.name`` or ``rec["name"]``; ``to_dict()`` for all fields."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return self._data[name]

    def to_dict(self) -> dict[str, Any]:
        return dict(self._data)

    def __repr__(self) -> str:
        ident = self._data.get("full_name") or self._data.get("name") or self._data.get("id")
        return f"{type(self).__name__}({ident!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and other._data == self._data

    __hash__ = None  # type: ignore[assignment]


class Project(Record):
    id: int
    org: str
    name: str
    full_name: str
    visibility: str


class Dataset(Record):
    id: int
    project_id: int
    name: str
    latest_version: int
    tags: list[str]


class DatasetVersion(Record):
    dataset_id: int
    version: int
    n_rows: int
    digest: str
    columns: list[dict[str, str]]


class Task(Record):
    id: int
    name: str
    version: int
    task_type: str
    dataset_id: int
    dataset_version: int
    spec: dict[str, Any]


R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class Page(Generic[R]):
    items: list[R]
    total: int
    limit: int
    offset: int

    def __iter__(self) -> Iterator[R]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def of(cls, data: dict[str, Any], kind: type[R]) -> Page[R]:
        return cls(
            items=[kind(x) for x in data["items"]],
            total=data["total"],
            limit=data["limit"],
            offset=data["offset"],
        )
