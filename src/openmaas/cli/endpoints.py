"""``openmaas endpoint``: deploy model versions as a service, share it, call it.

Watching it (``usage``, ``stats``, ``drift``, ``quality``, ``logs``) lives in
:mod:`openmaas.cli.endpoint_monitoring`.
"""

from __future__ import annotations

import json as jsonlib
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from openmaas.cli import endpoint_monitoring, output
from openmaas.cli.options import Json, Limit, Offset, ProjectRef, Yes
from openmaas.cli.session import client
from openmaas.client import Endpoint, Prediction

app = typer.Typer(
    help="Endpoints: model versions served under a name, with traffic splits, canaries, "
    "shadows or bandit routing, consumer organisations, rate limits and usage. "
    "Name a version by NAME@VERSION, NAME@ALIAS, ORG/PROJECT/NAME@VERSION or its id.",
    no_args_is_help=True,
)
consumer_app = typer.Typer(
    help="Let other organisations' members call an endpoint with their own tokens.",
    no_args_is_help=True,
)
app.add_typer(consumer_app, name="consumer")

Routing = Literal["split", "bandit"]
Policy = Literal["thompson", "epsilon_greedy"]
Audience = Literal["project", "consumers", "public"]

Name = Annotated[str, typer.Argument(metavar="NAME", help="Endpoint name.", show_default=False)]
Org = Annotated[str, typer.Argument(metavar="ORG", help="Organisation name.", show_default=False)]
TargetsOpt = Annotated[
    list[str],
    typer.Option(
        "--target",
        "-t",
        metavar="VERSION[=WEIGHT]",
        help="A version that answers, with its share of traffic in percent (the shares sum "
        "to 100); repeat for several. One version alone takes all the traffic.",
        show_default=False,
    ),
]
ShadowsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--shadow",
        metavar="VERSION",
        help="A version that gets a copy of every request; its answers are compared, "
        "never returned. Repeat for several.",
    ),
]
RoutingOpt = Annotated[
    Routing | None,
    typer.Option(help="split: fixed shares; bandit: learn the best version from rewards."),
]
PolicyOpt = Annotated[Policy | None, typer.Option(help="Bandit policy. (default: thompson)")]
EpsilonOpt = Annotated[
    float | None, typer.Option(min=0, max=1, help="Exploration rate of epsilon_greedy.")
]
RateOpt = Annotated[
    int | None,
    typer.Option(
        "--rate-limit",
        min=0,
        metavar="PER_MINUTE",
        help="Requests per minute per caller (0: none).",
    ),
]

ENDPOINT_COLUMNS: list[output.Column] = [
    ("name", "name"),
    ("project", "project"),
    ("audience", "audience"),
    ("routing", lambda e: routing_text(e["routing"])),
    ("versions", lambda e: targets_text(e["targets"])),
    ("consumers", lambda e: list(e["consumers"])),
    ("updated", "updated_at"),
]
TARGET_COLUMNS: list[output.Column] = [
    ("version", lambda t: f"{t['model']}@{t['version']}"),
    ("id", "version_id"),
    ("traffic", lambda t: "shadow" if t["shadow"] else f"{t['weight']}%"),
]


# Formatting ----------------------------------------------------------------------------


def routing_text(routing: Mapping[str, Any]) -> str:
    if routing.get("mode") != "bandit":
        return "split"
    policy = str(routing.get("policy", "thompson"))
    if policy == "epsilon_greedy":
        return f"bandit (epsilon_greedy, ε={routing.get('epsilon', 0.1):g})"
    return f"bandit ({policy})"


def targets_text(targets: Sequence[Mapping[str, Any]]) -> str:
    """``cancer@1 90%, cancer@2 10%, cancer@3 shadow``."""
    return ", ".join(
        f"{t['model']}@{t['version']} " + ("shadow" if t["shadow"] else f"{t['weight']}%")
        for t in targets
    )


def limits_text(limits: Mapping[str, Any]) -> str:
    rate, rows = limits.get("rate_per_minute"), limits.get("max_rows")
    parts = [f"{rate} requests/min per caller" if rate else "no rate limit"]
    if rows:
        parts.append(f"at most {rows} rows per request")
    return ", ".join(parts)


def print_endpoint(ep: Endpoint) -> None:
    info: dict[str, Any] = {
        "endpoint": ep.name,
        "project": ep.project,
        "url": ep.url,
        "description": ep.description or None,
        "audience": ep.audience,
        "routing": routing_text(ep.routing),
        "limits": limits_text(ep.limits),
        "monitoring": ep.monitoring,
        "generation": ep.generation,
        "created": ep.created_at,
        "updated": ep.updated_at,
    }
    output.details({k: v for k, v in info.items() if v is not None})
    output.table(ep.targets, TARGET_COLUMNS, title="Versions", empty="No versions.")
    consumers = [
        {"organisation": org, "rate limit": "endpoint's" if rate is None else f"{rate}/min"}
        for org, rate in ep.consumers.items()
    ]
    if consumers or ep.audience == "consumers":
        columns: list[output.Column] = [("organisation", "organisation")]
        columns.append(("rate limit", "rate limit"))
        output.table(consumers, columns, title="Consumers", empty="No consumer organisations.")


def changed(ep: Endpoint, message: str, json: bool) -> None:
    if json:
        output.emit_json(ep)
        return
    output.success(message)
    output.note(f"now serving: {targets_text(ep.targets)} ({routing_text(ep.routing)})")


def parse_targets(specs: list[str]) -> list[Any]:
    """``["cancer@1=90", "cancer@2=10"]`` as the SDK's ``[(ref, weight), ...]``."""
    out: list[Any] = []
    for spec in specs:
        ref, sep, weight = spec.rpartition("=")
        if not sep:
            out.append(spec)
            continue
        if not ref or not weight.isdigit():
            raise typer.BadParameter(
                f"{spec!r} is not VERSION or VERSION=WEIGHT", param_hint="--target"
            )
        out.append((ref, int(weight)))
    return out


def routing_of(
    routing: Routing | None, policy: Policy | None, epsilon: float | None
) -> dict[str, Any] | None:
    if routing is None and (policy is not None or epsilon is not None):
        routing = "bandit"
    if routing is None:
        return None
    out: dict[str, Any] = {"mode": routing}
    if routing == "bandit":
        out["policy"] = policy or "thompson"
        if epsilon is not None:
            out["epsilon"] = epsilon
    return out


def limits_of(rate_limit: int | None, max_rows: int | None) -> dict[str, Any] | None:
    """Limits to change; 0 clears one."""
    limits = {"rate_per_minute": rate_limit, "max_rows": max_rows}
    chosen = {k: v or None for k, v in limits.items() if v is not None}
    return chosen or None


def monitoring_of(sample_rate: float | None, psi: float | None) -> dict[str, Any] | None:
    chosen = {"sample_rate": sample_rate, "psi_threshold": psi}
    return {k: v for k, v in chosen.items() if v is not None} or None


SampleRate = Annotated[
    float | None,
    typer.Option(min=0, max=1, help="Share of requests logged with their answers (0 to 1)."),
]
PsiThreshold = Annotated[
    float | None, typer.Option("--psi-threshold", min=0, help="Drift (PSI) that flags a feature.")
]
MaxRows = Annotated[int | None, typer.Option(min=0, help="Most rows per request (0: default).")]


# Endpoints -----------------------------------------------------------------------------


@app.command("create")
def create(
    ctx: typer.Context,
    project: ProjectRef,
    name: Name,
    target: TargetsOpt,
    shadow: ShadowsOpt = None,
    audience: Annotated[
        Audience,
        typer.Option(help="Who may call: project members, also consumer organisations, anyone."),
    ] = "project",
    routing: RoutingOpt = None,
    policy: PolicyOpt = None,
    epsilon: EpsilonOpt = None,
    rate_limit: RateOpt = None,
    max_rows: MaxRows = None,
    sample_rate: SampleRate = None,
    psi_threshold: PsiThreshold = None,
    description: Annotated[str, typer.Option(help="What the endpoint is for.")] = "",
    json: Json = False,
) -> None:
    """Deploy versions under a new endpoint name (project maintainers)."""
    ep = client(ctx).endpoints.create(
        project,
        name,
        parse_targets(target),
        shadows=shadow,
        audience=audience,
        routing=routing_of(routing, policy, epsilon),
        limits=limits_of(rate_limit, max_rows),
        monitoring=monitoring_of(sample_rate, psi_threshold),
        description=description,
    )
    if json:
        output.emit_json(ep)
        return
    output.success(f"Created endpoint {ep.name} in {ep.project}: POST {ep.url}")
    output.note(f"serving: {targets_text(ep.targets)} ({routing_text(ep.routing)})")


@app.command("list")
def list_(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option(help="Project id or ORG/NAME.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    json: Json = False,
) -> None:
    """The endpoints of projects you can read, newest first."""
    page = client(ctx).endpoints.list(project=project, limit=limit, offset=offset)
    if json:
        output.emit_json(page.items)
        return
    output.table(page.items, ENDPOINT_COLUMNS, empty="No endpoints.")
    if page.total > len(page.items) + offset:
        output.note(f"showing {len(page.items)} of {page.total}; use --offset / --limit for more")


@app.command("show")
def show(ctx: typer.Context, name: Name, json: Json = False) -> None:
    """An endpoint's versions, routing, audience, consumers and limits."""
    ep = client(ctx).endpoints.get(name)
    if json:
        output.emit_json(ep)
    else:
        print_endpoint(ep)


@app.command("update")
def update(
    ctx: typer.Context,
    name: Name,
    description: Annotated[str | None, typer.Option(help="What the endpoint is for.")] = None,
    audience: Annotated[Audience | None, typer.Option(help="Who may call.")] = None,
    rate_limit: RateOpt = None,
    max_rows: MaxRows = None,
    sample_rate: SampleRate = None,
    psi_threshold: PsiThreshold = None,
    json: Json = False,
) -> None:
    """Change who may call, limits or monitoring (to change versions, use `deploy`)."""
    limits = limits_of(rate_limit, max_rows)
    monitoring = monitoring_of(sample_rate, psi_threshold)
    if description is None and audience is None and limits is None and monitoring is None:
        raise typer.BadParameter("nothing to change: give --audience, --rate-limit ...")
    ep = client(ctx).endpoints.update(
        name, description=description, audience=audience, limits=limits, monitoring=monitoring
    )
    if json:
        output.emit_json(ep)
    else:
        output.success(f"Updated endpoint {ep.name}")


@app.command("delete")
def delete(ctx: typer.Context, name: Name, yes: Yes = False) -> None:
    """Stop serving and delete the endpoint (its model versions stay)."""
    c = client(ctx)
    ep = c.endpoints.get(name)
    if not yes:
        typer.confirm(
            f"Delete endpoint {ep.name} ({targets_text(ep.targets)})?", abort=True, err=True
        )
    c.endpoints.delete(name)
    output.success(f"Deleted endpoint {ep.name}")


@app.command("deploy")
def deploy(
    ctx: typer.Context,
    name: Name,
    target: TargetsOpt,
    shadow: ShadowsOpt = None,
    routing: RoutingOpt = None,
    policy: PolicyOpt = None,
    epsilon: EpsilonOpt = None,
    json: Json = False,
) -> None:
    """Replace the deployed versions at once; no request fails during the switch."""
    ep = client(ctx).endpoints.deploy(
        name,
        parse_targets(target),
        shadows=shadow,
        routing=routing_of(routing, policy, epsilon),
    )
    changed(ep, f"Deployed to {ep.name}", json)


@app.command("canary")
def canary(
    ctx: typer.Context,
    name: Name,
    stable: Annotated[
        str, typer.Argument(metavar="STABLE", help="The version most traffic goes to.")
    ],
    candidate: Annotated[
        str, typer.Argument(metavar="CANARY", help="The version on trial.", show_default=False)
    ],
    percent: Annotated[
        int, typer.Option("--percent", "-p", min=1, max=99, help="The canary's share of traffic.")
    ] = 10,
    json: Json = False,
) -> None:
    """Send a small share of the traffic to a new version, the rest to the stable one."""
    ep = client(ctx).endpoints.canary(name, stable, candidate, percent)
    changed(ep, f"{ep.name}: {percent}% of the traffic now goes to {candidate}", json)


# Consumers -----------------------------------------------------------------------------


@consumer_app.command("add")
def consumer_add(
    ctx: typer.Context,
    name: Name,
    org: Org,
    rate_limit: Annotated[
        int | None,
        typer.Option(
            "--rate-limit",
            min=1,
            metavar="PER_MINUTE",
            help="Requests per minute per member. (default: the endpoint's)",
        ),
    ] = None,
    json: Json = False,
) -> None:
    """Let ORG's members call NAME (the endpoint's audience must be `consumers`)."""
    ep = client(ctx).endpoints.set_consumer(name, org, rate_limit)
    if json:
        output.emit_json(ep)
        return
    output.success(f"{org} may call {ep.name}")
    if ep.audience == "project":
        output.note(
            f"the audience of {ep.name} is 'project': consumers may call once you run "
            f"`openmaas endpoint update {ep.name} --audience consumers`"
        )


@consumer_app.command("rm")
def consumer_rm(ctx: typer.Context, name: Name, org: Org, json: Json = False) -> None:
    """Stop ORG's members calling NAME."""
    ep = client(ctx).endpoints.remove_consumer(name, org)
    if json:
        output.emit_json(ep)
    else:
        output.success(f"{org} may no longer call {ep.name}")


# Calling -------------------------------------------------------------------------------


def read_rows(path: Path) -> Any:
    """A file's rows: CSV or Parquet as a DataFrame, JSON Lines as records, JSON as is."""
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError, UnicodeDecodeError) as e:  # pandas' parser errors included
        raise typer.BadParameter(f"cannot read {path}: {e}", param_hint="--file") from e
    try:
        if suffix in (".jsonl", ".ndjson"):
            return [jsonlib.loads(line) for line in text.splitlines() if line.strip()]
        if suffix == ".json":
            return jsonlib.loads(text)
    except ValueError as e:
        raise typer.BadParameter(f"{path} is not valid JSON: {e}", param_hint="--file") from e
    raise typer.BadParameter(
        f"cannot tell the format of {path}: use .csv, .parquet, .json or .jsonl",
        param_hint="--file",
    )


def prediction_rows(out: Prediction) -> list[dict[str, Any]]:
    rows = []
    classes = out.classes or []
    for i, value in enumerate(out.predictions.tolist()):
        row: dict[str, Any] = {"row": i, "prediction": value}
        if out.probabilities is not None and len(classes) <= 10:
            for j, c in enumerate(classes):
                row[f"p({c})"] = float(out.probabilities[i, j])
        rows.append(row)
    return rows


PREVIEW_ROWS = 50


@app.command("predict")
def predict(
    ctx: typer.Context,
    name: Name,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            exists=True,
            dir_okay=False,
            readable=True,
            help="Rows to score: CSV, Parquet, JSON Lines records, or a JSON body.",
        ),
    ] = None,
    json_body: Annotated[
        str | None,
        typer.Option(
            "--json-body",
            metavar="JSON",
            help='A request body as sent to the API, e.g. \'{"records": [{"x": 1}]}\'; '
            "- reads it from stdin.",
        ),
    ] = None,
    output_file: Annotated[
        Path | None,
        typer.Option("--output", "-o", dir_okay=False, help="Write every prediction to a CSV."),
    ] = None,
    json: Json = False,
) -> None:
    """Call the endpoint with rows from a file or a JSON body and show its answer."""
    if (file is None) == (json_body is None):
        raise typer.BadParameter("give either --file or --json-body")
    if file is not None:
        data = read_rows(file)
    else:
        text = sys.stdin.read() if json_body == "-" else str(json_body)
        try:
            data = jsonlib.loads(text)
        except ValueError as e:
            raise typer.BadParameter(f"not valid JSON: {e}", param_hint="--json-body") from e
    out = client(ctx).endpoints.predict(name, data)
    if output_file is not None:
        out.to_pandas().to_csv(output_file, index_label="row")
    if json:
        answer: dict[str, Any] = {
            "predictions": out.predictions.tolist(),
            "request_id": out.request_id,
            "version": out.version,
        }
        if out.probabilities is not None:
            answer["probabilities"] = out.probabilities.tolist()
            answer["classes"] = out.classes
        output.emit_json(answer)
        return
    rows = prediction_rows(out)
    columns: list[output.Column] = [(k, k) for k in rows[0]] if rows else []
    output.table(rows[:PREVIEW_ROWS], columns, empty="No predictions.")
    if len(rows) > PREVIEW_ROWS:
        output.note(f"showing {PREVIEW_ROWS} of {len(rows)} rows; use --output or --json for all")
    output.note(f"answered by version {out.version}; request id {out.request_id}")
    if output_file is not None:
        output.note(f"wrote {len(rows)} predictions to {output_file}")


def label_value(text: str) -> Any:
    """``1`` and ``0.5`` as numbers, ``true`` as a boolean, anything else as text."""
    try:
        return jsonlib.loads(text)
    except ValueError:
        return text


@app.command("feedback")
def feedback(
    ctx: typer.Context,
    name: Name,
    request_id: Annotated[
        str,
        typer.Argument(
            metavar="REQUEST_ID", help="From the prediction's answer.", show_default=False
        ),
    ],
    reward: Annotated[
        float | None, typer.Option(help="How good the answer was (bandit routing learns).")
    ] = None,
    label: Annotated[str | None, typer.Option(help="The true value, for live quality.")] = None,
    json: Json = False,
) -> None:
    """Tell the endpoint how an earlier answer turned out."""
    if reward is None and label is None:
        raise typer.BadParameter("give --reward, --label or both")
    accepted = client(ctx).endpoints.feedback(
        name, request_id, reward=reward, label=None if label is None else label_value(label)
    )
    if json:
        output.emit_json(accepted)
    else:
        output.success(f"Recorded feedback on {request_id}")


endpoint_monitoring.register(app)
