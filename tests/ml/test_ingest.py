"""The dataset-ingest engine: bad input, type inference, profile numbers, append, memory."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from openmaas.errors import InvalidFile, InvalidInput, UnsupportedFormat
from openmaas.ml.data import (
    Limits,
    append_file,
    compute_profile,
    ingest_file,
)
from openmaas.ml.data import blocks as blocks_module


def ingest(tmp_path: Path, data: bytes, fmt: str = "csv", **kw: Any):
    src = tmp_path / f"src.{fmt}"
    src.write_bytes(data)
    return ingest_file(src, fmt, tmp_path / "out.parquet", **kw)  # type: ignore[arg-type]


def kinds(result) -> dict[str, tuple[str, str]]:
    return {c.name: (c.kind, c.dtype) for c in result.columns}


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 64 bytes, so a few lines exercise the multi-block paths."""
    monkeypatch.setattr(blocks_module, "BLOCK_BYTES", 64)


# -- bad input --------------------------------------------------------------------

BAD_CSV = [
    ("empty", b"", "the file is empty", {}),
    ("blank", b"\n\r\n", "the file is empty", {}),
    ("header only", b"a,b\n", "the file has a header but no data rows", {}),
    ("duplicates", b"a,b, a,b\n1,2,3,4\n", "duplicate column names: 'a', 'b'",
     {"columns": ["a", "b"]}),
    ("empty name", b"a,,c\n1,2,3\n", "column 2 has an empty name", {"position": 2}),
    ("control char", b"a,b\x01c\n1,2\n", "column 2 name 'b\\x01c' contains a control character",
     {"position": 2, "column": "b\x01c"}),
    ("ragged short", b"a,b\n1,2\n3\n4,5\n", "row 2 has 1 columns, expected 2",
     {"row": 2, "expected": 2, "got": 1}),
    ("ragged long", b'a,b\n"x",2\n\n3,4\n5,6,7\n', "row 3 has 3 columns, expected 2",
     {"row": 3, "expected": 2, "got": 3}),
    ("unbalanced quote", b'a,b\n1,2\n3,"x\n4,5\n',
     "row 2: a quoted field is never closed (unbalanced quotes)", {"row": 2}),
    ("unbalanced at end", b'a,b\n1,2\n3,"x',
     "row 2: a quoted field is never closed (unbalanced quotes)", {"row": 2}),
    ("not utf-8 text", b"a,b\n1,x\n2,\xff\n",
     "column 'b', row 2: the text is not valid UTF-8 (save the file as UTF-8)",
     {"column": "b", "row": 2}),
    ("not utf-8 in numbers", b"a,b\n1,2\n2,\xe9\n",
     "column 'b', row 2: the text is not valid UTF-8 (save the file as UTF-8)",
     {"column": "b", "row": 2}),
    ("not utf-8 header", b"a,\xff\n1,2\n",
     "the header row is not valid UTF-8 (save the file as UTF-8)", {"row": 0}),
    ("inf", b"a,b\n1,2.5\n2,inf\n",
     "column 'b', row 2: infinite values are not allowed in a numeric column",
     {"column": "b", "row": 2}),
    ("infinity", b"a\n1.5\n-Infinity\n",
     "column 'a', row 2: infinite values are not allowed in a numeric column",
     {"column": "a", "row": 2}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "message", "details"),
    [c[1:] for c in BAD_CSV],
    ids=[c[0] for c in BAD_CSV],
)
def test_bad_csv(tmp_path: Path, data: bytes, message: str, details: dict) -> None:
    with pytest.raises(InvalidFile, match=re.escape(message)) as exc:
        ingest(tmp_path, data)
    assert exc.value.code == "invalid_file"
    assert exc.value.status == 422
    assert exc.value.message == message
    assert exc.value.details == details
    assert not (tmp_path / "out.parquet").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src.csv"]  # no temporary left


@pytest.mark.parametrize(
    ("limits", "message", "details"),
    [
        (Limits(max_field_bytes=50), "column 'b', row 2: a field of 100 bytes is over the "
         "50-byte limit", {"column": "b", "row": 2, "limit": 50}),
        (Limits(max_rows=2), "the file has more than 2 rows (the limit)",
         {"row": 3, "limit": 2}),
        (Limits(max_columns=1), "the file has 2 columns, over the limit of 1",
         {"columns": 2, "limit": 1}),
    ],
    ids=["field", "rows", "columns"],
)  # fmt: skip
def test_limits(tmp_path: Path, limits: Limits, message: str, details: dict) -> None:
    data = b"a,b\n1,xx\n2," + b"y" * 100 + b"\n3,z\n"
    with pytest.raises(InvalidFile, match=re.escape(message)) as exc:
        ingest(tmp_path, data, limits=limits)
    assert (exc.value.message, exc.value.details) == (message, details)


def test_huge_field_without_line_break_names_the_row(tmp_path: Path, small_blocks: None) -> None:
    data = b"a,b\n1,2\n3," + b"x" * 5000 + b"\n"
    with pytest.raises(InvalidFile, match=r"^row 2 is longer than 2,008 bytes") as exc:
        ingest(tmp_path, data, limits=Limits(max_field_bytes=1000))
    assert exc.value.details == {"row": 2, "limit": 2008}


def test_missing_values_are_not_errors(tmp_path: Path) -> None:
    data = b"a,b,c\nNA,x,1.5\nnull,N/A,NaN\n3,None,nan\n,NULL,\n4,y,2\n"
    r = ingest(tmp_path, data)
    cols = r.profile["columns"]
    assert [cols[c]["missing"] for c in "abc"] == [3, 3, 3]
    assert r.profile["sample"]["a"] == [None, None, 3, None, 4]


def test_unsupported_format(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormat, match=r"^unsupported format 'xlsx'") as exc:
        ingest(tmp_path, b"a\n1\n", fmt="xlsx")
    assert exc.value.code == "unsupported_format"
    assert exc.value.message == "unsupported format 'xlsx'; choose from csv, parquet, jsonl"


BAD_JSONL = [
    ("empty", b"", "the file is empty", {}),
    ("invalid line", b'{"a":1}\n\n{"a":2\n',
     "line 3 is not valid JSON: unexpected end of data: line 1 column 7 (char 6)", {"line": 3}),
    ("not an object", b'{"a":1}\n[1]\n', "line 2 is not a JSON object", {"line": 2}),
    ("nested object", b'{"a":1,"b":{"c":1}}\n',
     "column 'b', line 1: nested objects and arrays are not supported; flatten them into "
     "columns before upload", {"column": "b", "line": 1}),
    ("nested array later", b'{"a":1,"b":2}\n{"a":1,"b":[1]}\n',
     "column 'b', line 2: nested objects and arrays are not supported; flatten them into "
     "columns before upload", {"column": "b", "line": 2}),
    ("mixed types", b'{"a":1}\n{"a":"x"}\n',
     "column 'a', line 2: string value in a column of number values", {"column": "a", "line": 2}),
    ("not utf-8", b'{"a":1}\n{"a":"\xff"}\n',
     "line 2 is not valid UTF-8 (save the file as UTF-8)", {"line": 2}),
    ("infinity", b'{"a":1.5}\n{"a":Infinity}\n',
     "column 'a', row 2: infinite values are not allowed in a numeric column",
     {"column": "a", "row": 2}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "message", "details"),
    [c[1:] for c in BAD_JSONL],
    ids=[c[0] for c in BAD_JSONL],
)
def test_bad_jsonl(tmp_path: Path, data: bytes, message: str, details: dict) -> None:
    with pytest.raises(InvalidFile, match=re.escape(message)) as exc:
        ingest(tmp_path, data, fmt="jsonl")
    assert (exc.value.code, exc.value.message, exc.value.details) == (
        "invalid_file",
        message,
        details,
    )


def test_bad_parquet(tmp_path: Path) -> None:
    with pytest.raises(InvalidFile, match=r"^not a valid Parquet file: Parquet magic bytes"):
        ingest(tmp_path, b"PAR1 not really", fmt="parquet")
    with pytest.raises(InvalidFile, match=r"^the file is empty$"):
        ingest(tmp_path, b"", fmt="parquet")


def test_parquet_nested_and_duplicate_columns(tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"a": [1], "b": pa.array([[1, 2]])}), src)
    with pytest.raises(InvalidFile, match=r"^column 'b' holds nested values") as exc:
        ingest_file(src, "parquet", tmp_path / "out.parquet")
    assert exc.value.message == (
        "column 'b' holds nested values, which have no column kind; "
        "flatten or convert it before upload"
    )
    assert exc.value.details == {"column": "b", "dtype": "list<element: int64>"}
    pq.write_table(pa.table([pa.array([1]), pa.array([2])], names=["x", "x "]), src)
    with pytest.raises(InvalidFile, match=r"^duplicate column names: 'x'$"):
        ingest_file(src, "parquet", tmp_path / "out.parquet")


def test_overrides_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"^override names unknown column 'z'$") as exc:
        ingest(tmp_path, b"a\n1\n", overrides={"z": "numeric"})
    assert (exc.value.code, exc.value.details) == ("invalid_input", {"column": "z"})
    with pytest.raises(InvalidInput, match=r"^column 'b' cannot be read as numeric") as exc:
        ingest(tmp_path, b"a,b\n1,2\n2,abc\n", overrides={"b": "numeric"})
    assert exc.value.message == "column 'b' cannot be read as numeric: row 2 holds 'abc'"
    assert exc.value.details == {"column": "b", "row": 2, "value": "abc"}
    with pytest.raises(InvalidInput, match=r"^unknown column kind 'number' for column 'a'"):
        ingest(tmp_path, b"a\n1\n", overrides={"a": "number"})
    with pytest.raises(InvalidInput, match=r"^unknown target column 'q'$") as exc:
        ingest(tmp_path, b"a\n1\n", target="q")
    assert exc.value.details == {"column": "q"}


def test_override_error_in_later_block(tmp_path: Path, small_blocks: None) -> None:
    data = b"a,b\n" + b"".join(b"%d,%d\n" % (i, i) for i in range(40)) + b"7,true\n"
    with pytest.raises(InvalidInput, match=r"^column 'b' cannot be read as numeric: row 41") as exc:
        ingest(tmp_path, data, overrides={"b": "numeric"})
    assert exc.value.details == {"column": "b", "row": 41, "value": "true"}


# -- types ------------------------------------------------------------------------


def test_type_inference(tmp_path: Path) -> None:
    rows = [
        "i,f,b,yn,d,ts,tz,cat,txt,empty, spaced name ",
        *(
            f"{k},{k / 4},{'true' if k % 3 else 'false'},{'yes' if k % 2 else 'no'},"
            f"2024-01-{k % 28 + 1:02d},2024-01-01T00:00:{k % 60:02d},"
            f"2024-01-01T00:00:00Z,{'abc'[k % 3]},word{k},,x"
            for k in range(100)
        ),
    ]
    r = ingest(tmp_path, ("\n".join(rows) + "\n").encode())
    assert kinds(r) == {
        "i": ("numeric", "int64"),
        "f": ("numeric", "double"),
        "b": ("boolean", "bool"),
        "yn": ("boolean", "bool"),
        "d": ("datetime", "date32[day]"),
        "ts": ("datetime", "timestamp[us]"),
        "tz": ("datetime", "timestamp[us, tz=UTC]"),
        "cat": ("categorical", "string"),
        "txt": ("text", "string"),
        "empty": ("text", "string"),
        "spaced name": ("categorical", "string"),
    }
    t = pq.read_table(r.parquet_path)
    assert str(t.schema.field("ts").type) == "timestamp[us]"
    assert r.profile["sample"]["ts"][0] == "2024-01-01T00:00:00"
    assert r.profile["columns"]["ts"]["max"] == "2024-01-01T00:00:59"
    assert r.profile["columns"]["d"]["min"] == "2024-01-01"


def test_later_floats_widen_an_integer_column(tmp_path: Path, small_blocks: None) -> None:
    data = b"a,b\n" + b"".join(b"%d,x%d\n" % (i, i) for i in range(50)) + b"1.5,y\n2,z\n"
    r = ingest(tmp_path, data)
    assert kinds(r)["a"] == ("numeric", "double")
    assert pq.read_table(r.parquet_path)["a"].to_pylist()[-3:] == [49.0, 1.5, 2.0]
    assert r.profile["columns"]["a"]["max"] == 49.0


def test_later_text_widens_to_string_keeping_the_original_text(
    tmp_path: Path, small_blocks: None
) -> None:
    data = b"zip\n" + b"".join(b"%05d\n" % i for i in range(30)) + b"A1234\n"
    r = ingest(tmp_path, data)
    assert kinds(r)["zip"][1] == "string"
    assert pq.read_table(r.parquet_path)["zip"].to_pylist()[:2] == ["00000", "00001"]


def test_quoted_line_breaks_across_blocks(tmp_path: Path, small_blocks: None) -> None:
    lines = [b'%d,"line one\nline, two ""%d"""\n' % (i, i) for i in range(20)]
    r = ingest(tmp_path, b"n,text\n" + b"".join(lines))
    t = pq.read_table(r.parquet_path)
    assert t.num_rows == 20
    assert t["text"][7].as_py() == 'line one\nline, two "7"'


def test_ragged_row_number_in_a_later_block(tmp_path: Path, small_blocks: None) -> None:
    data = b"a,b\n" + b"".join(b"%d,%d\n" % (i, i) for i in range(30)) + b"1,2,3\n"
    with pytest.raises(InvalidFile, match=r"^row 31 has 3 columns, expected 2$"):
        ingest(tmp_path, data)


def test_overrides(tmp_path: Path) -> None:
    data = b"id,flag,when,score\n007,1,2024-01-02,5\n008,0,2024-01-03,6\n009,1,2024-01-04,7\n"
    r = ingest(
        tmp_path,
        data,
        overrides={"id": "categorical", "flag": "boolean", "when": "text", "score": "numeric"},
    )
    assert kinds(r) == {
        "id": ("categorical", "string"),
        "flag": ("boolean", "bool"),
        "when": ("text", "string"),
        "score": ("numeric", "int64"),
    }
    t = pq.read_table(r.parquet_path)
    assert t["id"].to_pylist() == ["007", "008", "009"]
    assert t["flag"].to_pylist() == [True, False, True]


def test_numeric_override_widens_within_its_kind(tmp_path: Path, small_blocks: None) -> None:
    data = b"a\n" + b"".join(b"%d\n" % i for i in range(40)) + b"0.5\n"
    r = ingest(tmp_path, data, overrides={"a": "numeric"})
    assert kinds(r)["a"] == ("numeric", "double")


def test_jsonl(tmp_path: Path, small_blocks: None) -> None:
    lines = [json.dumps({"n": i, "s": f"v{i % 3}", "t": "2024-01-01T00:00:00"}) for i in range(20)]
    lines += ['{"n": 2.5, "s": null, "extra": true}']
    r = ingest(tmp_path, ("\n".join(lines) + "\n\n").encode(), fmt="jsonl")
    assert kinds(r) == {
        "n": ("numeric", "double"),
        "s": ("categorical", "string"),
        "t": ("datetime", "timestamp[us]"),
        "extra": ("boolean", "bool"),
    }
    assert r.n_rows == 21
    assert r.profile["columns"]["extra"]["missing"] == 20


def test_parquet_input_is_normalised_and_overridden(tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    table = pa.table(
        {
            "i8": pa.array([1, 2, 3] * 10, pa.int8()),
            "f32": pa.array([1.5, None, float("nan")] * 10, pa.float32()),
            "d": pa.array(["x", "y", "x"] * 10).dictionary_encode(),
            "s": pa.array(["1", "2", "x"] * 10),
        }
    )
    pq.write_table(table, src)
    r = ingest_file(src, "parquet", tmp_path / "out.parquet", overrides={"i8": "categorical"})
    assert kinds(r) == {
        "i8": ("categorical", "string"),
        "f32": ("numeric", "double"),
        "d": ("categorical", "string"),
        "s": ("categorical", "string"),
    }
    assert r.profile["columns"]["f32"]["missing"] == 20  # NaN is missing
    with pytest.raises(InvalidInput, match=r"^column 's' cannot be read as numeric: row 3") as exc:
        ingest_file(src, "parquet", tmp_path / "out.parquet", overrides={"s": "numeric"})
    assert exc.value.details == {"column": "s", "row": 3, "value": "x"}


# -- profile ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Any]:
    rng = np.random.default_rng(7)
    n = 5000
    df = pd.DataFrame(
        {
            "x": rng.normal(10, 3, n).round(4),
            "k": rng.integers(0, 1000, n),
            "c": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
            "flag": rng.random(n) < 0.25,
            "y": np.zeros(n),
        }
    )
    df["y"] = 2 * df["x"] + rng.normal(0, 1, n)
    df.loc[rng.random(n) < 0.1, "x"] = np.nan
    path = tmp_path_factory.mktemp("gen") / "gen.csv"
    df.to_csv(path, index=False)
    r = ingest_file(path, "csv", path.with_suffix(".parquet"), target="y", sample_rows=1000)
    return df, r


def test_profile_numbers_match_numpy(generated: tuple[pd.DataFrame, Any]) -> None:
    df, r = generated
    p = r.profile
    json.dumps(p, allow_nan=False)
    assert (p["n_rows"], p["n_columns"], p["sample_rows"]) == (5000, 5, 1000)
    x = df["x"].dropna().to_numpy()
    cx = p["columns"]["x"]
    assert cx["missing"] == df["x"].isna().sum()
    assert cx["count"] == x.size
    assert cx["min"] == x.min() and cx["max"] == x.max()
    assert cx["mean"] == pytest.approx(x.mean(), rel=1e-12)
    assert cx["std"] == pytest.approx(x.std(ddof=1), rel=1e-12)
    assert cx["distinct"] == np.unique(x).size and cx["distinct_approx"] is False
    qs = np.quantile(x, [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99])
    assert list(cx["quantiles"].values()) == pytest.approx(qs)
    counts, edges = np.histogram(x, bins=20, range=(x.min(), x.max()))
    assert cx["histogram"]["counts"] == counts.tolist()
    assert cx["histogram"]["edges"] == pytest.approx(edges)
    assert cx["histogram"]["source"] == "sample"
    cc = p["columns"]["c"]
    vc = df["c"].value_counts()
    assert cc["kind"] == "categorical" and cc["distinct"] == 3
    assert cc["top"] == [{"value": v, "count": int(c)} for v, c in vc.items()]
    assert p["columns"]["flag"]["top"][0] == {"value": False, "count": int((~df["flag"]).sum())}
    assert p["columns"]["k"]["distinct"] == df["k"].nunique()
    assert len(p["sample"]["x"]) == 1000


def test_profile_target_associations(generated: tuple[pd.DataFrame, Any]) -> None:
    df, r = generated
    assoc = r.profile["target"]["associations"]
    assert r.profile["target"]["column"] == "y"
    ok = df["x"].notna()
    expected = np.corrcoef(df["x"][ok], df["y"][ok])[0, 1]
    assert assoc["x"] == {"method": "pearson", "value": pytest.approx(expected, rel=1e-9)}
    assert assoc["c"]["method"] == "mutual_info"
    assert assoc["c"]["value"] >= 0
    assert set(assoc) == {"x", "k", "c", "flag"}


def test_compute_profile_standalone(generated: tuple[pd.DataFrame, Any]) -> None:
    _, r = generated
    p = compute_profile(r.parquet_path, r.columns, target="c", sample_rows=1000)
    assert p["columns"] == r.profile["columns"]
    assert p["target"]["associations"]["x"]["method"] == "mutual_info"
    with pytest.raises(InvalidInput, match=r"^unknown target column 'nope'$"):
        compute_profile(r.parquet_path, r.columns, target="nope")


def test_distinct_estimate_past_the_cap(tmp_path: Path) -> None:
    n = 150_000
    data = "v,s\n" + "".join(f"{i},s{i * 7919 % n}\n" for i in range(n))
    r = ingest(tmp_path, data.encode(), sample_rows=10)
    for col in ("v", "s"):
        c = r.profile["columns"][col]
        assert c["distinct_approx"] is True
        assert c["distinct"] == pytest.approx(n, rel=0.03)
    assert r.profile["columns"]["s"]["kind"] == "text"
    assert r.profile["columns"]["s"]["top_approx"] is True


def test_sample_is_seeded(tmp_path: Path) -> None:
    data = b"a\n" + b"".join(b"%d\n" % i for i in range(1000))
    one = ingest(tmp_path, data, sample_rows=10, seed=3).profile["sample"]["a"]
    two = ingest(tmp_path, data, sample_rows=10, seed=3).profile["sample"]["a"]
    other = ingest(tmp_path, data, sample_rows=10, seed=4).profile["sample"]["a"]
    assert one == two == sorted(one) and one != other and len(one) == 10


# -- append -------------------------------------------------------------------------


def test_append(tmp_path: Path) -> None:
    base = ingest(tmp_path, b"id,x,c\n1,0.5,a\n2,1.5,b\n", overrides={"id": "categorical"})
    base_path = tmp_path / "base.parquet"
    base.parquet_path.rename(base_path)
    new = tmp_path / "new.csv"
    new.write_bytes(b"c,x,id\nc,2,003\n")
    r = append_file(base_path, base.columns, new, "csv", tmp_path / "v2.parquet")
    t = pq.read_table(r.parquet_path)
    assert t.to_pydict() == {"id": ["1", "2", "003"], "x": [0.5, 1.5, 2.0], "c": ["a", "b", "c"]}
    assert r.columns == base.columns
    assert r.profile["n_rows"] == 3

    new.write_bytes(b"id,x,c\n4,1,d\n5,oops,e\n")
    with pytest.raises(InvalidFile, match=r"^column 'x', row 2: 'oops'") as exc:
        append_file(base_path, base.columns, new, "csv", tmp_path / "v3.parquet")
    assert exc.value.message == "column 'x', row 2: 'oops' does not fit the dataset's type double"
    assert exc.value.details == {"column": "x", "row": 2, "value": "oops", "expected": "double"}
    assert not (tmp_path / "v3.parquet").exists()

    new.write_bytes(b"id,x,z\n4,1,d\n")
    with pytest.raises(InvalidFile, match=r"^the file's columns differ") as exc:
        append_file(base_path, base.columns, new, "csv", tmp_path / "v3.parquet")
    assert exc.value.details == {"missing": ["c"], "unexpected": ["z"]}

    new.write_bytes(b'{"id": "6", "x": 3, "c": "f"}\n')
    r = append_file(base_path, base.columns, new, "jsonl", tmp_path / "v4.parquet")
    assert pq.read_table(r.parquet_path)["x"].to_pylist() == [0.5, 1.5, 3.0]


# -- memory -------------------------------------------------------------------------

_MEASURE = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path
    from openmaas.ml.data import blocks, ingest_file
    blocks.BLOCK_BYTES = 4 << 20
    r = ingest_file(Path(sys.argv[1]), "csv", Path(sys.argv[2]))
    print(r.n_rows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
)


def _peak_rss_kib(src: Path, out: Path) -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(src), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    rows, rss = done.stdout.split()
    return int(rows), int(rss)


def test_streams_with_bounded_memory(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 1_300_000
    df = pd.DataFrame(
        {
            "a": rng.integers(0, 10**9, n),
            "b": rng.normal(size=n).round(6),
            "c": rng.choice(["alpha", "beta", "gamma"], n),
            "d": rng.integers(0, 100, n),
        }
    )
    big = tmp_path / "big.csv"
    df.to_csv(big, index=False)
    small = tmp_path / "small.csv"
    df.head(20_000).to_csv(small, index=False)
    size_kib = big.stat().st_size // 1024
    assert size_kib > 30_000
    rows, rss_big = _peak_rss_kib(big, tmp_path / "big.parquet")
    _, rss_small = _peak_rss_kib(small, tmp_path / "small.parquet")
    assert rows == n
    assert rss_big - rss_small < size_kib // 2, (rss_big, rss_small, size_kib)


def test_numeric_override_keeps_floats_across_blocks(tmp_path: Path, small_blocks: None) -> None:
    data = b"a\n1\n2.5\n" + b"".join(b"%d\n" % i for i in range(60))
    r = ingest(tmp_path, data, overrides={"a": "numeric"})
    assert kinds(r)["a"] == ("numeric", "double")
    assert pq.read_table(r.parquet_path)["a"].to_pylist()[:3] == [1.0, 2.5, 0.0]


def test_blocks_kept_by_a_reader_are_never_overwritten() -> None:
    """Block buffers are reused only once nothing refers to them any more."""
    import io

    lines = b"".join(b"%06d,row\n" % i for i in range(2000))
    reader = blocks_module.BlockReader(
        io.BytesIO(lines), block_bytes=256, quote_aware=False, max_record_bytes=1024
    )
    kept = []
    for i, block in enumerate(reader):
        if i % 3 == 0:
            kept.append((block, bytes(block.data)))
    assert all(bytes(b.data) == copy for b, copy in kept)
    again = blocks_module.BlockReader(
        io.BytesIO(lines), block_bytes=256, quote_aware=False, max_record_bytes=1024
    )
    assert b"".join(bytes(b.data) for b in again) == lines


def test_content_hash_matches_the_file_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The digest is taken while writing (and synced as it goes), never by re-reading."""
    import hashlib

    from openmaas.ml.data import sink as sink_module

    monkeypatch.setattr(sink_module, "SYNC_BYTES", 1 << 16)
    monkeypatch.setattr(sink_module, "WRITE_BUFFER_BYTES", 1 << 15)
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.normal(size=200_000), "s": rng.choice(["a", "b"], 200_000)})
    src = tmp_path / "in.csv"
    df.to_csv(src, index=False)
    r = ingest_file(src, "csv", tmp_path / "out.parquet")
    assert r.parquet_sha256 == hashlib.sha256(r.parquet_path.read_bytes()).hexdigest()
    assert pq.read_table(r.parquet_path).num_rows == 200_000
