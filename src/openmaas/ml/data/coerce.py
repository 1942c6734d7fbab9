"""Casting parsed columns to their target types, naming the first value that fails.

JSON Lines and Parquet are parsed with the types they carry, then cast to the
dataset's types (an override, or the base version's types on append). Arrow's
cast fails for a whole array; the first failing row is found by bisection over
prefixes, which costs only on the error path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from openmaas.ml.data.blocks import CoercionError

TRUE_TOKENS = ("true", "yes", "1")
FALSE_TOKENS = ("false", "no", "0")


def cast_table(table: pa.Table, types: Mapping[str, pa.DataType], rows_before: int) -> pa.Table:
    """``table`` with every column cast to ``types``; raises :class:`CoercionError`."""
    for i, name in enumerate(table.column_names):
        target = types[name]
        col = table.column(i)
        if col.type != target:
            table = table.set_column(i, name, cast_column(col, target, name, rows_before))
    return table


def cast_column(
    col: pa.ChunkedArray, target: pa.DataType, name: str, rows_before: int
) -> pa.ChunkedArray:
    arr = col.combine_chunks()
    convert = _converter(arr.type, target)
    try:
        return pa.chunked_array([convert(arr)])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    lo, hi = 0, len(arr)  # arr[:lo] converts, arr[:hi] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            convert(arr.slice(0, mid))
            lo = mid
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            hi = mid
    raise CoercionError(name, rows_before + hi, arr[hi - 1].as_py(), target)


def _converter(source: pa.DataType, target: pa.DataType) -> Callable[[pa.Array], pa.Array]:
    if pa.types.is_boolean(target) and (
        pa.types.is_string(source) or pa.types.is_large_string(source)
    ):
        return _text_to_bool
    if pa.types.is_boolean(target) and (
        pa.types.is_integer(source) or pa.types.is_floating(source)
    ):
        return _number_to_bool
    if pa.types.is_dictionary(source):
        return lambda a: a.dictionary_decode().cast(target)
    return lambda a: a.cast(target)


def _text_to_bool(a: pa.Array) -> pa.Array:
    low = pc.utf8_lower(pc.utf8_trim_whitespace(a))
    t, f = pc.is_in(low, pa.array(TRUE_TOKENS)), pc.is_in(low, pa.array(FALSE_TOKENS))
    if pc.any(pc.and_(pc.invert(pc.or_(t, f)), pc.is_valid(a))).as_py():
        raise pa.ArrowInvalid("not a boolean")
    return pc.if_else(pc.is_valid(a), t, pa.scalar(None, pa.bool_()))


def _number_to_bool(a: pa.Array) -> pa.Array:
    ok = pc.is_in(a, pa.array([0, 1], a.type))
    if pc.any(pc.and_(pc.invert(ok), pc.is_valid(a))).as_py():
        raise pa.ArrowInvalid("not 0 or 1")
    return a.cast(pa.bool_())
