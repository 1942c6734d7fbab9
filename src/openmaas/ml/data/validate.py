"""Checks shared by every input format: column names and parsed values.

Rows are reported 1-based, counting data rows only (not the header, not blank
lines), so a user can find them in the file they uploaded.
"""

from __future__ import annotations

import unicodedata
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

from openmaas.errors import InvalidFile
from openmaas.ml.data.schema import Limits


def check_names(raw: list[str], limits: Limits) -> list[str]:
    """Column names with surrounding whitespace stripped, or the first problem.

    Any printable Unicode is allowed; control characters, empty names and
    duplicates (after stripping) are not.
    """
    if len(raw) > limits.max_columns:
        raise InvalidFile(
            f"the file has {len(raw):,} columns, over the limit of {limits.max_columns:,}",
            details={"columns": len(raw), "limit": limits.max_columns},
        )
    names = [n.strip() for n in raw]
    for i, name in enumerate(names, start=1):
        if not name:
            raise InvalidFile(f"column {i} has an empty name", details={"position": i})
        if any(unicodedata.category(ch) == "Cc" for ch in name):
            raise InvalidFile(
                f"column {i} name {name!r} contains a control character",
                details={"position": i, "column": name},
            )
    dups = sorted(n for n, k in Counter(names).items() if k > 1)
    if dups:
        listed = ", ".join(repr(n) for n in dups)
        raise InvalidFile(f"duplicate column names: {listed}", details={"columns": dups})
    return names


def first_true(mask: pa.Array | pa.ChunkedArray) -> int:
    """Index of the first true value of a boolean array (-1 if none)."""
    return int(pc.index(mask, True).as_py())


def check_values(table: pa.Table, rows_before: int, limits: Limits) -> pa.Table:
    """Reject infinite numbers and over-long fields; turn NaN into missing.

    CSV parses ``NaN`` as missing already; Parquet and JSON can carry real NaN,
    which has no place in a profile, so it becomes missing everywhere alike.
    """
    for i, (name, col) in enumerate(zip(table.column_names, table.columns, strict=True)):
        t = col.type
        if pa.types.is_floating(t):
            if pc.all(pc.is_finite(col)).as_py() is not False:
                continue
            if pc.any(pc.is_inf(col)).as_py():
                row = rows_before + first_true(pc.is_inf(col)) + 1
                raise InvalidFile(
                    f"column {name!r}, row {row}: infinite values are not allowed "
                    "in a numeric column",
                    details={"column": name, "row": row},
                )
            if pc.any(pc.is_nan(col)).as_py():
                col = pc.if_else(pc.is_nan(col), pa.scalar(None, t), col)
                table = table.set_column(i, name, col)
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            lengths = pc.binary_length(col)
            longest = pc.max(lengths).as_py()
            if longest is not None and longest > limits.max_field_bytes:
                idx = first_true(pc.greater(lengths, limits.max_field_bytes))
                size, row = lengths[idx].as_py(), rows_before + idx + 1
                raise InvalidFile(
                    f"column {name!r}, row {row}: a field of {size:,} bytes is over "
                    f"the {limits.max_field_bytes:,}-byte limit",
                    details={"column": name, "row": row, "limit": limits.max_field_bytes},
                )
    return table
