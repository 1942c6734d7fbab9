"""JSON Lines input: one flat JSON object per line, parsed block by block by Arrow.

Columns are the union of the objects' keys, in order of first appearance; a
missing key is a missing value, and so is ``null`` or ``NaN``. Values keep
their JSON type: numbers (integers widen to double when a fraction appears),
booleans, strings (ISO 8601 strings become datetimes). A key that holds both
numbers and strings, or a nested object or array, is rejected naming the
column and line: flatten such data before upload (we do not guess a
flattening users would then have to reverse). Blank lines are skipped; errors
give the 1-based line number in the file.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator, Mapping

import orjson
import pyarrow as pa
import pyarrow.json as pajson

from openmaas.errors import InvalidFile
from openmaas.ml.data import blocks as _blocks
from openmaas.ml.data.blocks import Block, BlockFormat, BlockReader
from openmaas.ml.data.coerce import cast_table
from openmaas.ml.data.growing import Src, open_binary
from openmaas.ml.data.schema import Limits, join_types, normalise_type
from openmaas.ml.data.validate import check_names

ARROW_CHUNK_BYTES = 4 << 20
_NEW_FIELD = "openmaas: new field "
_CANNOT_CONVERT = re.compile(r"Failed to convert JSON to .+?, couldn't parse:(.*)\Z", re.S)


class JsonlFormat(BlockFormat):
    """A JSON Lines file; ``types`` from an earlier pass fix the column order."""

    def __init__(
        self, src: Src, limits: Limits, *, types: Mapping[str, pa.DataType] | None = None
    ) -> None:
        self.src = src
        self.limits = limits
        self.block_bytes = _blocks.BLOCK_BYTES
        self.max_record = 64 << 20
        self._raw: dict[str, str] = {}
        gen = self._blocks()
        first = next(gen, None)
        gen.close()
        if first is None or not bytes(first.data).strip():
            raise InvalidFile("the file is empty")
        table = self._arrow(first, None)
        raw_names = list(table.column_names)
        self.names = check_names(raw_names, limits)
        self._raw = dict(zip(self.names, raw_names, strict=True))
        self.native = {
            n: self._native_type(n, t, first)
            for n, t in zip(self.names, table.schema.types, strict=True)
        }
        if types is not None:  # a later pass: widen the first block's types as found
            self.names = list(types)
            self.native = {n: _rejoin(self.native.get(n), t) for n, t in types.items()}
        self.inferred = dict(self.native)
        if table.num_rows == 0:
            raise InvalidFile("the file has no data rows")

    def _blocks(self) -> Generator[Block, None, None]:
        with open_binary(self.src) as f:
            yield from BlockReader(
                f,
                block_bytes=self.block_bytes,
                quote_aware=False,
                max_record_bytes=self.max_record,
                count_lines=True,
            )

    def _arrow(self, block: Block, schema: pa.Schema | None) -> pa.Table:
        """Arrow's parse of a block, or the precise error for its first bad line."""
        parse = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
        for size in (ARROW_CHUNK_BYTES, len(block.data) + 1):
            try:
                return pajson.read_json(
                    pa.py_buffer(block.data),
                    read_options=pajson.ReadOptions(block_size=size),
                    parse_options=parse,
                )
            except (pa.ArrowInvalid, UnicodeDecodeError) as e:
                if "straddl" in str(e) and size == ARROW_CHUNK_BYTES:
                    continue
                if schema is None:
                    raise self._diagnose(block, e, 0) from None
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _native_type(self, name: str, t: pa.DataType, block: Block) -> pa.DataType:
        if pa.types.is_nested(t):
            raise self._nested_error(block, name)
        return normalise_type(t)

    def _parse(self, block: Block, types: Mapping[str, pa.DataType]) -> pa.Table:
        names = [n for n in self.names if n in types]
        schema = pa.schema([(self._raw.get(n, n), self.native[n]) for n in names])
        table = self._arrow(block, schema)
        known = set(schema.names)
        extra = [n for n in table.column_names if n not in known]
        if extra and self.strict_columns:
            raw = extra[0]
            line = next((ln for ln, o in _objects(block) if isinstance(o, dict) and raw in o), None)
            raise InvalidFile(
                f"line {line}: field {raw.strip()!r} is not a column of the dataset",
                details={"column": raw.strip(), "line": line},
            )
        if extra:
            raise pa.ArrowInvalid(_NEW_FIELD + extra[0])
        return cast_table(table.rename_columns(names), types, 0)

    def _infer(self, block: Block) -> dict[str, pa.DataType]:
        table = self._arrow(block, None)
        raw = list(table.column_names)
        clean = [n.strip() for n in raw]
        out: dict[str, pa.DataType] = {}
        for r, n, t in zip(raw, clean, table.schema.types, strict=True):
            self._raw.setdefault(n, r)
            t = self._native_type(n, t, block)
            out[n] = t
            self.native[n] = join_types(self.native[n], t) if n in self.native else t
        for n in out:
            if n not in self.names:
                self.names.append(n)
        check_names(self.names, self.limits)
        return out

    def _conflict(
        self, block: Block, exc: Exception, types: Mapping[str, pa.DataType]
    ) -> tuple[str, object] | None:
        msg = str(exc)
        if msg.startswith(_NEW_FIELD):
            return msg[len(_NEW_FIELD) :].strip(), None
        m = _CANNOT_CONVERT.search(msg)
        if m is None:
            return None
        inferred = self._infer(block)
        for n, t in inferred.items():
            if n in types and join_types(types[n], t) != types[n]:
                return n, m.group(1)
        return None

    def _locate(self, block: Block, column: str, value: object) -> int | None:
        raw = self._raw.get(column, column)
        for row, (_, obj) in enumerate(_objects(block)):
            if isinstance(obj, dict) and raw in obj and (value is None or str(obj[raw]) == value):
                return row
        return None

    def _nested_error(self, block: Block, name: str) -> InvalidFile:
        raw = self._raw.get(name, name)
        for line, obj in _objects(block):
            if isinstance(obj, dict) and isinstance(obj.get(raw), dict | list):
                return _nested(name, line)
        return _nested(name, None)

    def _diagnose(self, block: Block, exc: Exception, rows_before: int) -> Exception:
        seen: dict[str, str] = {}
        for line, obj in _objects(block):
            if isinstance(obj, InvalidFile):
                return obj
            if not isinstance(obj, dict):
                return InvalidFile(f"line {line} is not a JSON object", details={"line": line})
            for key, value in obj.items():
                if isinstance(value, dict | list):
                    return _nested(key.strip(), line)
                kind = _json_kind(value)
                if kind is None:
                    continue
                first = seen.setdefault(key, kind)
                if first != kind:
                    return InvalidFile(
                        f"column {key.strip()!r}, line {line}: {kind} value in a column of "
                        f"{first} values",
                        details={"column": key.strip(), "line": line},
                    )
        return InvalidFile(
            f"cannot parse the JSON Lines file after line {block.lines_before}: {exc}",
            details={"line": block.lines_before + 1},
        )


def _rejoin(native: pa.DataType | None, found: pa.DataType) -> pa.DataType:
    """The type to parse with, given the first block's and an earlier pass's.

    An override to text is applied by a cast after parsing, so joining up to
    ``string`` (which JSON numbers cannot be parsed as) keeps the native type.
    """
    if native is None:
        return found
    joined = join_types(native, found)
    return native if pa.types.is_string(joined) and not pa.types.is_string(native) else joined


def _objects(block: Block) -> Iterator[tuple[int, object]]:
    """(1-based line number, parsed object or the error) for each non-blank line."""
    for i, line in enumerate(bytes(block.data).split(b"\n")):
        if not line.strip():
            continue
        number = block.lines_before + i + 1
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            yield (
                number,
                InvalidFile(
                    f"line {number} is not valid UTF-8 (save the file as UTF-8)",
                    details={"line": number},
                ),
            )
            return
        try:
            yield number, orjson.loads(line)
        except orjson.JSONDecodeError as e:
            yield (
                number,
                InvalidFile(f"line {number} is not valid JSON: {e}", details={"line": number}),
            )
            return


def _json_kind(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def _nested(name: str, line: int | None) -> InvalidFile:
    where = f", line {line}" if line is not None else ""
    return InvalidFile(
        f"column {name!r}{where}: nested objects and arrays are not supported; "
        "flatten them into columns before upload",
        details={"column": name, "line": line},
    )
