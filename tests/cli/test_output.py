"""Cell formatting, JSON of SDK records and the profile summary."""

from __future__ import annotations

from datetime import datetime

import pytest

from openmaas.cli.output import cell, plain
from openmaas.cli.profile import summary_rows
from openmaas.client import Record


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, ""),
        (True, "yes"),
        (False, "no"),
        (["a", 1], "a, 1"),
        ({"k": 3}, "k=3"),
        (1 / 3, "0.333333"),
        ("2020-01-01T10:20:30", "2020-01-01 10:20"),
        ("2020-01-01", "2020-01-01"),
        ("timestamp[us]", "timestamp[us]"),
    ],
)
def test_cell(value: object, shown: str) -> None:
    assert cell(value) == shown


def test_moments_are_shown_in_local_time() -> None:
    local = datetime.fromisoformat("2024-06-01T12:00:00+00:00").astimezone()
    assert cell("2024-06-01T12:00:00.123456+00:00") == local.strftime("%Y-%m-%d %H:%M")


def test_plain_unwraps_records() -> None:
    data = {"dataset": Record({"id": 1}), "versions": [Record({"version": 2})]}
    assert plain(data) == {"dataset": {"id": 1}, "versions": [{"version": 2}]}


def test_profile_summary() -> None:
    profile = {
        "n_rows": 10,
        "columns": {
            "x": {"kind": "numeric", "missing": 2, "distinct": 8, "mean": 1.5, "min": 0},
            "c": {
                "kind": "text",
                "missing": 0,
                "distinct": 1000,
                "distinct_approx": True,
                "top": [{"value": "a", "count": 4}],
                "top_approx": True,
            },
        },
    }
    x, c = summary_rows(profile)
    assert (x["missing"], x["distinct"], x["mean"], x["top"]) == ("2 (20.0%)", "8", 1.5, "")
    assert (c["missing"], c["distinct"], c["top"]) == ("0", "≈1000", "a (≈4)")
