"""Column kinds, limits and the result of an ingest: the data types callers see.

A column has a storage type (the Arrow type written to Parquet) and a *kind*,
the role it plays for modelling. Kinds are what users override and what task
validation checks; storage types are what readers get back. The two are kept
apart because one storage type serves several kinds (``string`` is both
``categorical`` and ``text``, and an integer id may be forced to categorical).

Storage types are normalised so every dataset uses a handful of them:
``int64``, ``double``, ``bool``, ``string``, ``date32[day]`` and
``timestamp[us]`` / ``timestamp[ns]`` (with the source's time zone, if any).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import pyarrow as pa

from openmaas.errors import InvalidInput

ColumnKind = Literal["numeric", "categorical", "boolean", "datetime", "text"]
KINDS: tuple[str, ...] = get_args(ColumnKind)
Format = Literal["csv", "parquet", "jsonl"]
FORMATS: tuple[str, ...] = get_args(Format)


@dataclass(frozen=True)
class ColumnSchema:
    """One column of a dataset version: its name, kind and Arrow type string."""

    name: str
    kind: ColumnKind
    dtype: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "kind": self.kind, "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnSchema:
        kind = check_kind(d["kind"], column=str(d["name"]))
        return cls(name=str(d["name"]), kind=kind, dtype=str(d["dtype"]))


@dataclass(frozen=True)
class Limits:
    """Bounds that keep one upload from exhausting the server (see ``config.py``)."""

    max_field_bytes: int = 1 << 20
    max_rows: int = 200_000_000
    max_columns: int = 10_000


@dataclass
class IngestResult:
    """What an ingest produced: the typed Parquet file and its description."""

    n_rows: int
    columns: list[ColumnSchema]
    profile: dict[str, Any]
    parquet_path: Path
    parquet_bytes: int
    parquet_sha256: str | None = None  # computed while writing, saves a re-read to store it


def check_kind(kind: object, *, column: str) -> ColumnKind:
    """``kind`` if it names a column kind, else an error listing the valid ones."""
    if kind not in KINDS:
        raise InvalidInput(
            f"unknown column kind {kind!r} for column {column!r}; choose from {', '.join(KINDS)}",
            details={"column": column, "kind": kind},
        )
    return kind  # type: ignore[return-value]


def kind_of_type(t: pa.DataType) -> ColumnKind:
    """The default kind of a storage type (strings are refined by the profile)."""
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return "numeric"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "datetime"
    return "text"


_TS_UNITS = ("s", "ms", "us", "ns")


def normalise_type(t: pa.DataType) -> pa.DataType:
    """The storage type used for values inferred or read as ``t``.

    Seconds and milliseconds become microseconds because Parquet has no
    seconds unit (it would silently come back as milliseconds); time-of-day
    becomes text because no kind fits it.
    """
    if pa.types.is_timestamp(t):
        unit = "ns" if t.unit == "ns" else "us"
        return pa.timestamp(unit, tz=t.tz)
    if pa.types.is_time(t) or pa.types.is_binary(t):
        return pa.string()  # binary: text that is not UTF-8, reported when parsed as string
    return t


def join_types(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """The narrowest storage type holding values of both ``a`` and ``b``.

    The lattice is ``null < {bool, int64 < double, date32 < timestamp} < string``;
    every type widens to ``string``, which accepts any text. Used when a later
    block of a file contradicts the types inferred from an earlier one.
    """
    if a == b:
        return a
    if pa.types.is_null(a):
        return b
    if pa.types.is_null(b):
        return a
    if pa.types.is_integer(a) and pa.types.is_floating(b):
        return b
    if pa.types.is_floating(a) and pa.types.is_integer(b):
        return a
    if pa.types.is_date(a) and pa.types.is_timestamp(b):
        return b
    if pa.types.is_timestamp(a) and pa.types.is_date(b):
        return a
    if pa.types.is_timestamp(a) and pa.types.is_timestamp(b) and a.tz == b.tz:
        return a if _TS_UNITS.index(a.unit) >= _TS_UNITS.index(b.unit) else b
    return pa.string()


def type_for_kind(kind: ColumnKind, inferred: pa.DataType) -> pa.DataType:
    """The storage type a user's kind override parses a column into."""
    if kind == "numeric":
        return inferred if pa.types.is_integer(inferred) else pa.float64()
    if kind == "boolean":
        return pa.bool_()
    if kind == "datetime":
        if pa.types.is_timestamp(inferred) or pa.types.is_date(inferred):
            return inferred
        return pa.timestamp("us")
    return pa.string()
