"""``openmaas endpoint usage | stats | drift | quality | logs``: how an endpoint is doing."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

import typer

from openmaas.cli import output
from openmaas.cli.options import Json, Limit, Offset
from openmaas.cli.session import client
from openmaas.client import Client

Name = Annotated[str, typer.Argument(metavar="NAME", help="Endpoint name.", show_default=False)]
USAGE_COLUMNS: list[output.Column] = [
    ("day", "day"),
    ("consumer", "consumer"),
    ("requests", "requests"),
    ("rows", "rows"),
    ("errors", "errors"),
    ("rate limited", "limited"),
]


def usage(
    ctx: typer.Context,
    name: Name,
    days: Annotated[int, typer.Option(min=1, max=366, help="Days back.")] = 30,
    json: Json = False,
) -> None:
    """Requests, rows, errors and rate-limited requests per consumer per day (endpoint
    maintainers)."""
    rows = client(ctx).endpoints.usage(name, days=days)
    if json:
        output.emit_json(rows)
        return
    output.table(rows, USAGE_COLUMNS, empty="No usage yet (counters reach the server each second).")


def latency(stat: Mapping[str, Any], key: str) -> str | None:
    """A percentile as the upper bound of its histogram bucket: ``≤ 5`` (ms)."""
    if not stat.get("requests"):
        return None
    value = stat.get(key)
    if value is None:  # slower than the last bound
        bounds = stat.get("latency_buckets_ms") or []
        return f"> {bounds[-1]:g}" if bounds else None
    return f"≤ {value:g}"


def version_names(c: Client, name: str) -> dict[int, str]:
    """``{version id: "model@version"}`` for the versions the endpoint serves now."""
    targets = c.endpoints.get(name).targets
    return {int(t["version_id"]): f"{t['model']}@{t['version']}" for t in targets}


def version_label(version_id: int, versions: Mapping[int, str]) -> str:
    return versions.get(version_id, f"version id {version_id}")


def stat_row(stat: Mapping[str, Any], versions: Mapping[int, str]) -> dict[str, Any]:
    s = stat["state"]
    feedback = s.get("feedback", 0)
    version_id = int(stat["version_id"])
    mean = stat.get("latency_ms_mean")
    return {
        "minute": stat["window_start"],
        "version": version_label(version_id, versions) if version_id else "refused",
        "requests": stat["requests"],
        "errors": stat["errors"],
        "rows": stat["rows"],
        "mean ms": None if mean is None else round(mean, 2),
        "p50 ms": latency(stat, "latency_ms_p50"),
        "p99 ms": latency(stat, "latency_ms_p99"),
        "feedback": feedback or None,
        "mean reward": round(s["reward_sum"] / feedback, 4) if feedback else None,
        "shadow disagree": s.get("shadow_disagree"),
    }


def present(rows: list[dict[str, Any]]) -> list[output.Column]:
    """A column per key that some row has a value for."""
    keys = [k for k in (rows[0] if rows else {}) if any(r[k] is not None for r in rows)]
    return [(k, k) for k in keys]


Windows = Annotated[int, typer.Option(min=1, max=10_000, help="Windows (minutes) back.")]


def stats(ctx: typer.Context, name: Name, windows: Windows = 60, json: Json = False) -> None:
    """Per minute and version: requests, errors, rows, latency, feedback, shadow diffs."""
    c = client(ctx)
    found = c.endpoints.stats(name, windows=windows)
    if json:
        output.emit_json(found)
        return
    versions = version_names(c, name)
    rows = [stat_row(s.to_dict(), versions) for s in found]
    output.table(rows, present(rows), empty="No traffic yet.")


def number(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def feature_row(f: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "feature": f["name"],
        "kind": f["kind"],
        "rows": f["rows"],
        "missing": f["missing"] or None,
        "psi": number(f["psi"]),
        "ks": number(f["ks"]),
        "p-value": f["p_value"],
        "drift": "FLAGGED" if f["flagged"] else ("" if f["enough_data"] else "too few rows"),
    }


def window_row(w: Mapping[str, Any]) -> dict[str, Any]:
    p = w.get("predictions") or {}
    classes = p.get("classes")
    if classes:
        spread: Any = dict(zip(classes, p.get("counts") or [], strict=False))
    else:
        spread = None if p.get("mean") is None else f"mean {p['mean']:.4g} ± {p['std']:.3g}"
    return {
        "minute": w["window_start"],
        "rows": w["rows"],
        "flagged": ", ".join(w["flagged_features"]) or None,
        "predictions": spread,
        "prediction psi": number((p.get("drift") or {}).get("psi")),
    }


def drift(
    ctx: typer.Context,
    name: Name,
    windows: Windows = 60,
    all_windows: Annotated[
        bool, typer.Option("--windows-table", help="Also list every window.")
    ] = False,
    json: Json = False,
) -> None:
    """Feature drift (PSI, Kolmogorov-Smirnov) against each version's training data."""
    c = client(ctx)
    report = c.endpoints.drift(name, windows=windows)
    if json:
        output.emit_json(report)
        return
    versions = version_names(c, name)
    verdict = (
        f"drift in {', '.join(report.flagged_features)}" if report.flagged else "no drift flagged"
    )
    output.details(
        {
            "endpoint": report.endpoint,
            "verdict": verdict,
            "flagged when": f"psi ≥ {report.psi_threshold:g}, p < {report.alpha:g}, "
            f"at least {report.min_rows} rows",
        }
    )
    for v in report.versions:
        label = version_label(int(v["version_id"]), versions)
        if v["note"]:
            output.note(f"{label}: {v['note']}")
        current = v.get("current")
        if current is not None:
            title = f"{label}: the newest {current['windows']} window(s), {current['rows']} rows"
            rows = [feature_row(f) for f in current["features"]]
            output.table(rows, FEATURE_COLUMNS, title=title)
        if all_windows:
            rows = [window_row(w) for w in v["windows"]]
            output.table(rows, present(rows), title=f"{label}: windows", empty="No windows.")


FEATURE_COLUMNS: list[output.Column] = [
    (k, k) for k in ("feature", "kind", "rows", "missing", "psi", "ks", "p-value", "drift")
]
CLASSIFICATION = ("accuracy", "log_loss", "brier", "unknown")
REGRESSION = ("mae", "rmse", "bias", "r2", "skipped")


def metric(key: str) -> Callable[[Mapping[str, Any]], float | None]:
    return lambda row: number(row.get(key))


def quality(ctx: typer.Context, name: Name, windows: Windows = 60, json: Json = False) -> None:
    """Live quality from the labels posted as feedback, overall and per minute."""
    c = client(ctx)
    report = c.endpoints.quality(name, windows=windows)
    if json:
        output.emit_json(report)
        return
    versions = version_names(c, name)
    shown = False
    for v in report.versions:
        if v["overall"] is None:
            continue
        shown = True
        metrics = CLASSIFICATION if v["kind"] == "classification" else REGRESSION
        rows = [{"window": "overall", **v["overall"]}]
        rows += [{**w, "window": w["window_start"]} for w in v["windows"]]
        columns: list[output.Column] = [("window", "window"), ("rows", "rows")]
        columns += [(m.replace("_", " "), metric(m)) for m in metrics]
        title = f"{version_label(int(v['version_id']), versions)} ({v['kind']})"
        output.table(rows, columns, title=title)
        if v["unmatched"]:
            output.note(f"{v['unmatched']} label(s) came too late to match their prediction")
    if not shown:
        output.stdout().print("No labels yet: post them with `openmaas endpoint feedback --label`.")


def body_text(record: Mapping[str, Any]) -> str:
    """A short view of a logged call: its rows going in, what came out or was fed back."""
    body = record.get("body") or {}
    text = jsonlib.dumps(body.get("request", body), separators=(",", ":"), default=str)
    return text if len(text) <= 80 else text[:79] + "…"


LOG_COLUMNS: list[output.Column] = [
    ("at", "at"),
    ("kind", "kind"),
    ("request id", "request_id"),
    ("version", "version_id"),
    ("consumer", "consumer"),
    ("ms", lambda r: None if r["latency_ms"] is None else round(r["latency_ms"], 2)),
    ("body", body_text),
]


def logs(
    ctx: typer.Context,
    name: Name,
    kind: Annotated[
        Literal["request", "feedback"] | None,
        typer.Option(help="Only requests (sampled) or only feedback."),
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    json: Json = False,
) -> None:
    """The sampled request log and the feedback, newest first (endpoint maintainers)."""
    page = client(ctx).endpoints.records(name, kind, limit=limit, offset=offset)
    if json:
        output.emit_json(page.items)
        return
    output.table(page.items, LOG_COLUMNS, empty="Nothing logged yet.")
    if page.total > len(page.items) + offset:
        output.note(f"showing {len(page.items)} of {page.total}; use --offset / --limit for more")


def register(app: typer.Typer) -> None:
    app.command("usage")(usage)
    app.command("stats")(stats)
    app.command("drift")(drift)
    app.command("quality")(quality)
    app.command("logs")(logs)
