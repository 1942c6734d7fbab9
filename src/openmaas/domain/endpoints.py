"""Endpoints: model versions deployed under a name, who may call them, and what they did.

An endpoint belongs to a project; maintainers create, deploy and configure it
(``manage``). A deployment is a set of targets: versions with a traffic weight
(the non-shadow weights sum to 100; a canary is a small weight) or shadows
(they get copies of the traffic; their answers are logged, never returned).
With bandit routing, weights are ignored and the live versions compete on the
rewards posted as feedback.

Every input signature on an endpoint has the same columns (the first
deployment fixes them): a version that does not fit is refused, so switching
versions never breaks a caller. Each change bumps ``generation``, which is all
a serving replica polls to pick the change up.

Who may call (``policy.decide_call``): the project's members, members of the
consumer organisations, or anyone when the audience is ``public``.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from openmaas.domain import audit
from openmaas.domain.context import Ctx
from openmaas.domain.names import check_name
from openmaas.domain.pages import Page, check_window, page_of
from openmaas.domain.policy import Action
from openmaas.domain.projects import authorize
from openmaas.errors import Conflict, InvalidInput, NotFound
from openmaas.ml.bandits import TrafficSplit
from openmaas.store.metadata.scoped import readable_projects
from openmaas.store.metadata.tables import (
    Endpoint,
    EndpointConsumer,
    EndpointRecord,
    EndpointStat,
    EndpointTarget,
    EndpointUsage,
    Model,
    ModelVersion,
    Organization,
    Project,
)

AUDIENCES = ("project", "consumers", "public")
ROUTING_MODES = ("split", "bandit")
BANDIT_POLICIES = ("thompson", "epsilon_greedy")
DEFAULT_LIMITS: dict[str, Any] = {"rate_per_minute": None, "max_rows": None}
DEFAULT_MONITORING: dict[str, Any] = {"sample_rate": 0.01, "psi_threshold": 0.1}


@dataclass(frozen=True)
class Target:
    """A deployed version as callers name it: ``model`` (id or name) and ``version``."""

    version_id: int
    weight: int = 0
    shadow: bool = False


@dataclass(frozen=True)
class TargetView:
    version_id: int
    model: str
    version: int
    weight: int
    shadow: bool


@dataclass(frozen=True)
class EndpointView:
    endpoint: Endpoint
    project: str
    targets: list[TargetView] = field(default_factory=list)
    consumers: dict[str, int | None] = field(default_factory=dict)  # org name -> rate limit


# Checks ---------------------------------------------------------------------------


def check_audience(audience: str) -> str:
    if audience not in AUDIENCES:
        raise InvalidInput(
            f"invalid audience {audience!r}; use one of {', '.join(AUDIENCES)}",
            details={"field": "audience"},
        )
    return audience


def check_routing(routing: dict[str, Any] | None) -> dict[str, Any]:
    routing = dict(routing or {"mode": "split"})
    mode = routing.get("mode", "split")
    if mode not in ROUTING_MODES:
        raise InvalidInput(
            f"invalid routing mode {mode!r}; use one of {', '.join(ROUTING_MODES)}",
            details={"field": "routing.mode"},
        )
    out: dict[str, Any] = {"mode": mode}
    if mode == "bandit":
        policy = routing.get("policy", "thompson")
        if policy not in BANDIT_POLICIES:
            raise InvalidInput(
                f"invalid bandit policy {policy!r}; use one of {', '.join(BANDIT_POLICIES)}",
                details={"field": "routing.policy"},
            )
        out["policy"] = policy
        epsilon = routing.get("epsilon", 0.1)
        if not isinstance(epsilon, int | float) or not 0 <= epsilon <= 1:
            raise InvalidInput("routing.epsilon must be from 0 to 1", details={"field": "epsilon"})
        out["epsilon"] = float(epsilon)
        out["seed"] = routing.get("seed")
    extra = set(routing) - {"mode", "policy", "epsilon", "seed"}
    if extra:
        raise InvalidInput(
            f"unknown routing settings: {', '.join(sorted(extra))}", details={"field": "routing"}
        )
    return out


def _positive_or_none(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10**9:
        raise InvalidInput(f"{name} must be a whole number from 1 to 10^9", details={"field": name})
    return value


def check_limits(limits: dict[str, Any] | None) -> dict[str, Any]:
    limits = {**DEFAULT_LIMITS, **(limits or {})}
    extra = set(limits) - set(DEFAULT_LIMITS)
    if extra:
        raise InvalidInput(
            f"unknown limits: {', '.join(sorted(extra))}", details={"field": "limits"}
        )
    return {k: _positive_or_none(v, f"limits.{k}") for k, v in limits.items()}


def check_monitoring(monitoring: dict[str, Any] | None) -> dict[str, Any]:
    out = {**DEFAULT_MONITORING, **(monitoring or {})}
    extra = set(out) - set(DEFAULT_MONITORING)
    if extra:
        raise InvalidInput(
            f"unknown monitoring settings: {', '.join(sorted(extra))}",
            details={"field": "monitoring"},
        )
    for key in DEFAULT_MONITORING:
        value = out[key]
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise InvalidInput(f"monitoring.{key} must be a number >= 0", details={"field": key})
    if out["sample_rate"] > 1:
        raise InvalidInput(
            "monitoring.sample_rate must be at most 1", details={"field": "sample_rate"}
        )
    return out


def check_targets(targets: list[Target], routing: dict[str, Any]) -> None:
    if not targets:
        raise InvalidInput("a deployment needs at least one version", details={"field": "targets"})
    ids = [t.version_id for t in targets]
    if len(set(ids)) != len(ids):
        raise InvalidInput(
            "a version appears twice in the deployment", details={"field": "targets"}
        )
    live = [t for t in targets if not t.shadow]
    if not live:
        raise InvalidInput(
            "a deployment needs a version that answers (not only shadows)",
            details={"field": "targets"},
        )
    if any(t.shadow and t.weight for t in targets):
        raise InvalidInput("shadow versions take no traffic weight", details={"field": "targets"})
    if routing["mode"] == "split":
        TrafficSplit({str(t.version_id): t.weight for t in live})  # raises naming the problem


# Loading --------------------------------------------------------------------------


def _load(ctx: Ctx, s: Session, endpoint_id: int, action: Action) -> Endpoint:
    ep = s.get(Endpoint, endpoint_id)
    if ep is None:
        raise NotFound("endpoint not found")
    authorize(ctx, s, ep.project_id, action, kind="endpoint")
    return ep


def _by_name(ctx: Ctx, s: Session, name: str, action: Action) -> Endpoint:
    ep = s.scalar(select(Endpoint).where(Endpoint.name == name))
    if ep is None:
        raise NotFound(f"endpoint {name!r} not found")
    authorize(ctx, s, ep.project_id, action, kind="endpoint")
    return ep


def _view(s: Session, ep: Endpoint) -> EndpointView:
    rows = s.execute(
        select(EndpointTarget, ModelVersion.version, Model.name)
        .join(ModelVersion, ModelVersion.id == EndpointTarget.version_id)
        .join(Model, Model.id == ModelVersion.model_id)
        .where(EndpointTarget.endpoint_id == ep.id)
        .order_by(EndpointTarget.shadow, EndpointTarget.weight.desc(), EndpointTarget.id)
    ).all()
    targets = [TargetView(t.version_id, name, v, t.weight, t.shadow) for t, v, name in rows]
    consumers = dict(
        s.execute(
            select(Organization.name, EndpointConsumer.rate_limit_per_minute)
            .join(EndpointConsumer, EndpointConsumer.org_id == Organization.id)
            .where(EndpointConsumer.endpoint_id == ep.id)
            .order_by(Organization.name)
        ).all()
    )
    project = s.execute(
        select(Organization.name, Project.name)
        .join(Project, Project.org_id == Organization.id)
        .where(Project.id == ep.project_id)
    ).one()
    return EndpointView(ep, f"{project[0]}/{project[1]}", targets, consumers)


def _versions(ctx: Ctx, s: Session, targets: list[Target]) -> list[ModelVersion]:
    """The targets' versions; each must be readable by the caller and servable."""
    out = []
    for t in targets:
        v = s.get(ModelVersion, t.version_id)
        if v is None:
            raise NotFound(f"model version {t.version_id} not found", details={"field": "targets"})
        model = s.get(Model, v.model_id)
        assert model is not None
        authorize(ctx, s, model.project_id, Action.read, kind="model version")
        if v.flavor == "pickle" and not ctx.settings.allow_pickle_models:
            raise InvalidInput(
                f"version {v.version} of {model.name!r} is a pickle and pickles are disabled",
                details={"field": "targets"},
            )
        out.append(v)
    return out


def _check_signatures(s: Session, ep: Endpoint | None, versions: list[ModelVersion]) -> None:
    """Every version must read the same columns as the endpoint already serves."""
    names = [sorted(c["name"] for c in v.signature.get("inputs", [])) for v in versions]
    reference = names[0]
    if ep is not None:
        current = s.scalar(
            select(ModelVersion)
            .join(EndpointTarget, EndpointTarget.version_id == ModelVersion.id)
            .where(EndpointTarget.endpoint_id == ep.id)
            .limit(1)
        )
        if current is not None:
            reference = sorted(c["name"] for c in current.signature.get("inputs", []))
    for v, n in zip(versions, names, strict=True):
        if n != reference:
            missing = sorted(set(reference) - set(n))
            extra = sorted(set(n) - set(reference))
            raise InvalidInput(
                f"model version {v.id} does not fit the endpoint's signature"
                + (f"; it lacks {', '.join(missing[:5])}" if missing else "")
                + (f"; it adds {', '.join(extra[:5])}" if extra else ""),
                details={"field": "targets", "version_id": v.id},
            )


def _replace_targets(s: Session, ep: Endpoint, targets: list[Target]) -> None:
    s.execute(EndpointTarget.__table__.delete().where(EndpointTarget.endpoint_id == ep.id))
    s.add_all(
        EndpointTarget(endpoint_id=ep.id, version_id=t.version_id, weight=t.weight, shadow=t.shadow)
        for t in targets
    )


# Services -------------------------------------------------------------------------


def create(
    ctx: Ctx,
    project_id: int,
    name: str,
    targets: list[Target],
    *,
    description: str = "",
    audience: str = "project",
    routing: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
    monitoring: dict[str, Any] | None = None,
) -> EndpointView:
    """Deploy ``targets`` under a new endpoint name (unique on the platform)."""
    check_name(name)
    check_audience(audience)
    routing = check_routing(routing)
    limits = check_limits(limits)
    monitoring = check_monitoring(monitoring)
    check_targets(targets, routing)
    try:
        with ctx.store.write() as s:
            authorize(ctx, s, project_id, Action.manage, kind="project")
            if s.scalar(select(Endpoint.id).where(Endpoint.name == name)):
                raise Conflict(f"endpoint {name!r} already exists", details={"field": "name"})
            _check_signatures(s, None, _versions(ctx, s, targets))
            ep = Endpoint(
                project_id=project_id, name=name, description=description, audience=audience,
                routing=routing, limits=limits, monitoring=monitoring,
                created_by=ctx.principal.user_id,
            )  # fmt: skip
            s.add(ep)
            s.flush()
            _replace_targets(s, ep, targets)
            s.flush()
            _audit(s, ctx, ep, "endpoint.create", targets)
            return _view(s, ep)
    except IntegrityError as e:
        raise Conflict(f"endpoint {name!r} already exists", details={"field": "name"}) from e


def _audit(s: Session, ctx: Ctx, ep: Endpoint, action: str, targets: list[Target] | None) -> None:
    details: dict[str, Any] = {"name": ep.name, "generation": ep.generation}
    if targets is not None:
        details["targets"] = [t.__dict__ for t in targets]
    audit.record(
        s, ctx.principal, action, "endpoint", ep.id, project_id=ep.project_id, details=details
    )


def get(ctx: Ctx, name: str) -> EndpointView:
    with ctx.store.read() as s:
        return _view(s, _by_name(ctx, s, name, Action.read))


def list_endpoints(
    ctx: Ctx, *, project_id: int | None = None, limit: int = 50, offset: int = 0
) -> Page[EndpointView]:
    check_window(limit, offset)
    query = (
        select(Endpoint)
        .join(Project, Project.id == Endpoint.project_id)
        .where(readable_projects(ctx.principal))
    )
    if project_id is not None:
        query = query.where(Endpoint.project_id == project_id)
    with ctx.store.read() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = s.scalars(query.order_by(Endpoint.id.desc()).limit(limit).offset(offset)).all()
        return page_of([_view(s, ep) for ep in rows], total, limit, offset)


def deploy(
    ctx: Ctx, name: str, targets: list[Target], routing: dict[str, Any] | None = None
) -> EndpointView:
    """Replace the deployment at once; replicas switch within a sync period, and
    requests in flight finish on the versions they started on."""
    with ctx.store.write() as s:
        ep = _by_name(ctx, s, name, Action.manage)
        new_routing = check_routing(routing) if routing is not None else ep.routing
        check_targets(targets, new_routing)
        _check_signatures(s, ep, _versions(ctx, s, targets))
        _replace_targets(s, ep, targets)
        ep.routing = new_routing
        _touch(ep)
        s.flush()
        _audit(s, ctx, ep, "endpoint.deploy", targets)
        return _view(s, ep)


def _touch(ep: Endpoint) -> None:
    ep.generation += 1
    ep.updated_at = datetime.now(UTC)


def update(
    ctx: Ctx,
    name: str,
    *,
    description: str | None = None,
    audience: str | None = None,
    limits: dict[str, Any] | None = None,
    monitoring: dict[str, Any] | None = None,
) -> EndpointView:
    with ctx.store.write() as s:
        ep = _by_name(ctx, s, name, Action.manage)
        if description is not None:
            ep.description = description
        if audience is not None:
            ep.audience = check_audience(audience)
        if limits is not None:
            ep.limits = check_limits({**ep.limits, **limits})
        if monitoring is not None:
            ep.monitoring = check_monitoring({**ep.monitoring, **monitoring})
        _touch(ep)
        _audit(s, ctx, ep, "endpoint.update", None)
        return _view(s, ep)


def delete(ctx: Ctx, name: str) -> None:
    with ctx.store.write() as s:
        ep = _by_name(ctx, s, name, Action.manage)
        _audit(s, ctx, ep, "endpoint.delete", None)
        s.delete(ep)


def set_consumer(ctx: Ctx, name: str, org: str, rate_per_minute: int | None = None) -> EndpointView:
    """Let the members of ``org`` call the endpoint, optionally with their own rate limit."""
    _positive_or_none(rate_per_minute, "rate_per_minute")
    with ctx.store.write() as s:
        ep = _by_name(ctx, s, name, Action.manage)
        org_id = s.scalar(select(Organization.id).where(Organization.name == org))
        if org_id is None:
            raise NotFound(f"organisation {org!r} not found", details={"field": "org"})
        row = s.scalar(
            select(EndpointConsumer).where(
                EndpointConsumer.endpoint_id == ep.id, EndpointConsumer.org_id == org_id
            )
        )
        if row is None:
            s.add(EndpointConsumer(endpoint_id=ep.id, org_id=org_id,
                                   rate_limit_per_minute=rate_per_minute))  # fmt: skip
        else:
            row.rate_limit_per_minute = rate_per_minute
        _touch(ep)
        s.flush()
        _audit(s, ctx, ep, "endpoint.consumer.set", None)
        return _view(s, ep)


def remove_consumer(ctx: Ctx, name: str, org: str) -> EndpointView:
    with ctx.store.write() as s:
        ep = _by_name(ctx, s, name, Action.manage)
        org_id = s.scalar(select(Organization.id).where(Organization.name == org))
        row = s.scalar(
            select(EndpointConsumer).where(
                EndpointConsumer.endpoint_id == ep.id, EndpointConsumer.org_id == org_id
            )
        )
        if row is None:
            raise NotFound(f"{org!r} is not a consumer of {name!r}", details={"field": "org"})
        s.delete(row)
        _touch(ep)
        s.flush()
        _audit(s, ctx, ep, "endpoint.consumer.remove", None)
        return _view(s, ep)


def add_usage(
    s: Session,
    endpoint_id: int,
    day: str,
    consumer: str,
    requests: int,
    rows: int,
    errors: int,
    limited: int = 0,
) -> None:
    """Add to a consumer's counters of a day (replicas each sync, scoring jobs at the end);
    ``limited`` of the requests were refused by the rate limit."""
    consumer = consumer[:80]
    changed = s.execute(
        sql_update(EndpointUsage)
        .where(
            EndpointUsage.endpoint_id == endpoint_id,
            EndpointUsage.day == day,
            EndpointUsage.consumer == consumer,
        )
        .values(
            requests=EndpointUsage.requests + requests,
            rows=EndpointUsage.rows + rows,
            errors=EndpointUsage.errors + errors,
            limited=EndpointUsage.limited + limited,
        )
    ).rowcount  # type: ignore[attr-defined]
    if not changed:
        s.add(EndpointUsage(endpoint_id=endpoint_id, day=day, consumer=consumer,
                            requests=requests, rows=rows, errors=errors,
                            limited=limited))  # fmt: skip


def admitted(s: Session, keys: Collection[tuple[int, str, str]]) -> dict[tuple[int, str, str], int]:
    """Requests admitted so far (``requests - limited``) per ``(endpoint_id, day,
    consumer)`` of ``keys``, over every replica: what replicas share a rate limit by."""
    if not keys:
        return {}
    rows = s.execute(
        select(EndpointUsage.endpoint_id, EndpointUsage.day, EndpointUsage.consumer,
               EndpointUsage.requests - EndpointUsage.limited)
        .where(
            EndpointUsage.endpoint_id.in_({k[0] for k in keys}),
            EndpointUsage.day.in_({k[1] for k in keys}),
            EndpointUsage.consumer.in_({k[2] for k in keys}),
        )
    )  # fmt: skip
    wanted = set(keys)
    return {(e, d, c): int(n) for e, d, c, n in rows if (e, d, c) in wanted}


def usage_day(at: datetime | None = None) -> str:
    """The UTC day usage is counted under."""
    return (at or datetime.now(UTC)).strftime("%Y-%m-%d")


def usage(ctx: Ctx, name: str, *, days: int = 30) -> list[EndpointUsage]:
    """Requests, rows and errors per consumer per day (maintainers: it names consumers)."""
    if not 1 <= days <= 366:
        raise InvalidInput("days must be from 1 to 366", details={"field": "days"})
    with ctx.store.read() as s:
        ep = _by_name(ctx, s, name, Action.manage)
        return list(
            s.scalars(
                select(EndpointUsage)
                .where(EndpointUsage.endpoint_id == ep.id)
                .order_by(EndpointUsage.day.desc(), EndpointUsage.consumer)
                .limit(days * 100)
            )
        )


def stats(ctx: Ctx, name: str, *, windows: int = 60) -> tuple[Endpoint, list[EndpointStat]]:
    """The monitoring windows (newest first) of every version."""
    if not 1 <= windows <= 10_000:
        raise InvalidInput("windows must be from 1 to 10000", details={"field": "windows"})
    with ctx.store.read() as s:
        ep = _by_name(ctx, s, name, Action.read)
        rows = list(
            s.scalars(
                select(EndpointStat)
                .where(EndpointStat.endpoint_id == ep.id)
                .order_by(EndpointStat.window_start.desc(), EndpointStat.version_id)
                .limit(windows * 10)
            )
        )
        return ep, rows


def records(
    ctx: Ctx, name: str, *, kind: str | None = None, limit: int = 50, offset: int = 0
) -> Page[EndpointRecord]:
    """The sampled request log and feedback (maintainers: it holds callers' data)."""
    check_window(limit, offset)
    with ctx.store.read() as s:
        ep = _by_name(ctx, s, name, Action.manage)
        query = select(EndpointRecord).where(EndpointRecord.endpoint_id == ep.id)
        if kind is not None:
            query = query.where(EndpointRecord.kind == kind)
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = list(s.scalars(query.order_by(EndpointRecord.id.desc()).limit(limit).offset(offset)))
        return page_of(rows, total, limit, offset)
