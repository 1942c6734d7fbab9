"""The per-column summary table of a dataset profile (see ``openmaas.ml.data.profile``)."""

from __future__ import annotations

from typing import Any

from openmaas.cli import output


def _missing(col: dict[str, Any], n_rows: int) -> str:
    missing = int(col.get("missing") or 0)
    if not missing or not n_rows:
        return str(missing)
    return f"{missing} ({100 * missing / n_rows:.1f}%)"


def _distinct(col: dict[str, Any]) -> str:
    value = col.get("distinct")
    if value is None:
        return ""
    return f"≈{value}" if col.get("distinct_approx") else str(value)


def _top(col: dict[str, Any]) -> str:
    top = col.get("top") or []
    if not top:
        return ""
    first = top[0]
    approx = "≈" if col.get("top_approx") else ""
    return f"{output.cell(first.get('value'))} ({approx}{first.get('count')})"


def summary_rows(profile: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per column: kind, missing, distinct, moments or range, most frequent value."""
    n_rows = int(profile.get("n_rows") or 0)
    rows = []
    for name, col in (profile.get("columns") or {}).items():
        rows.append(
            {
                "column": name,
                "kind": col.get("kind"),
                "missing": _missing(col, n_rows),
                "distinct": _distinct(col),
                "mean": col.get("mean"),
                "std": col.get("std"),
                "min": col.get("min"),
                "max": col.get("max"),
                "top": _top(col),
            }
        )
    return rows


def render(profile: dict[str, Any]) -> None:
    rows = summary_rows(profile)
    title = f"{profile.get('n_rows', '?')} rows, {profile.get('n_columns', len(rows))} columns"
    target = (profile.get("target") or {}).get("column")
    if target:
        title += f"; target {target}"
    headers = ["column", "kind", "missing", "distinct", "mean", "std", "min", "max", "top"]
    output.table(rows, [(h, h) for h in headers], title=title, empty="No columns.")
