"""The serving runtime: deployments, warm models and callers cached in memory.

The request path (``predict``, ``feedback``) does not touch the metadata store
(but to look up a token it has never seen): deployments, models and tokens are
cached; usage, monitoring windows, bandit
statistics and the sampled request log are aggregated in memory. A background
thread syncs both ways every ``serving_sync_s`` seconds: it reloads endpoints
whose ``generation`` moved (loading new versions before switching, so a switch
never fails a request) and adds this replica's counters to the store's.

The sync thread re-checks every cached token each period in one query, so a
revoked token stops working on every replica within one sync period; unknown
tokens are remembered as such for ``serving_token_ttl_s`` seconds.
Rate limits are token buckets per consumer in each replica, shared: each sync
reads back how many requests every replica admitted (``requests - limited`` in
the usage table) and takes from each bucket what the others admitted since the
last sync.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import random
import shutil
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from sqlalchemy import select

from openmaas.domain.context import Platform
from openmaas.domain.endpoints import add_usage, admitted, usage_day
from openmaas.domain.identity import principals_by_hash, resolve_token, token_hash
from openmaas.domain.models import materialize
from openmaas.domain.monitoring import merge_monitor, readable_endpoints
from openmaas.domain.policy import EndpointAccess, decide_call
from openmaas.domain.principal import ANONYMOUS, Principal
from openmaas.domain.projects import access_of
from openmaas.errors import InvalidInput, NotFound, OpenMaaSError, RateLimited, Unauthenticated
from openmaas.ml import flavors
from openmaas.ml.bandits import ArmStats, Bandit, EpsilonGreedy, ThompsonSampling, TrafficSplit
from openmaas.ml.flavors.signature import Signature
from openmaas.serving import inputs
from openmaas.serving.monitor import Monitor
from openmaas.store.metadata.tables import (
    Endpoint,
    EndpointArm,
    EndpointConsumer,
    EndpointRecord,
    EndpointStat,
    EndpointTarget,
    ModelFile,
    ModelVersion,
    Project,
)

log = logging.getLogger("openmaas.serving")
LATENCY_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)
MAX_LOGGED_BODY = 64 * 1024
MAX_LOGGED_PER_SYNC = 20
#: Seconds after which an unused rate-limit bucket is dropped: it would have refilled.
BUCKET_IDLE_S = 120.0


@dataclass
class Deployment:
    """One endpoint as a replica serves it (an immutable snapshot but for the router)."""

    id: int
    name: str
    generation: int
    access: EndpointAccess
    consumer_limits: dict[int, int | None]
    limits: dict[str, Any]
    monitoring: dict[str, Any]
    signature: Signature
    live: list[int]
    shadows: list[int]
    router: TrafficSplit | Bandit
    max_rows: int  # rows one request may send
    sample_rate: float  # share of requests logged


@dataclass
class Call:
    """A checked request waiting for its model (replicas batch these)."""

    deployment: Deployment
    version: int
    X: Any
    consumer: str
    start: float
    body: bytes


@dataclass
class Answer:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


class ServingRuntime:
    def __init__(
        self, platform: Platform, *, only: str | None = None, window_s: float = 60.0
    ) -> None:
        self.platform = platform
        self.monitor = Monitor(platform, window_s=window_s)  # drift, quality, Prometheus
        self.only = only
        self.settings = platform.settings
        self.deployments: dict[str, Deployment] = {}
        self.predictors: dict[int, flavors.Predictor] = {}
        # Authorization header -> (principal or None if refused, checked at, token hash)
        self._tokens: dict[str, tuple[Principal | None, float, str]] = {}
        self._decisions: dict[tuple[int, int], tuple[Deployment, Principal, int | None]] = {}
        # (deployment id, consumer) -> [tokens, refilled at, limit per minute]
        self._buckets: dict[tuple[int, str], list[float]] = {}
        self._lock = threading.Lock()
        # (endpoint id, day, consumer) -> [requests, rows, errors, rate limited]
        self._usage: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        # the same key -> requests admitted over every replica, as of the last sync
        self._admitted: dict[tuple[int, str, str], int] = {}
        self._stats: dict[tuple[int, int, datetime], dict[str, Any]] = {}
        self._records: list[EndpointRecord] = []
        self._rng = np.random.default_rng()
        self._random = random.Random()  # not the global one (tests seed and watch that)
        # Request ids: the version, this replica's random prefix, a counter (unique, cheap).
        self._id_prefix = uuid.uuid4().hex[:12]
        self._ids = itertools.count(1)
        self._day = (0, "")
        self.log_per_sync = MAX_LOGGED_PER_SYNC
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = False
        self.cache_dir = self.settings.tmp_dir / f"serving-{uuid.uuid4().hex[:8]}"

    # Lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self.sync()
        self._thread = threading.Thread(target=self._loop, name="serving-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()
        shutil.rmtree(self.cache_dir, ignore_errors=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.serving_sync_s):
            try:
                self.sync()
            except Exception:  # keep serving what is loaded; try again next period
                log.exception("serving sync failed")

    def sync(self) -> None:
        self.flush()
        self._refresh_tokens()
        self.refresh()
        self.ready = True

    # Loading deployments -------------------------------------------------------------

    def refresh(self) -> None:
        """Reload endpoints whose generation changed; drop deleted ones."""
        store = self.platform.store
        with store.read() as s:
            query = select(Endpoint.name, Endpoint.generation)
            if self.only is not None:
                query = query.where(Endpoint.name == self.only)
            current = dict(s.execute(query).all())
        for name in list(self.deployments):
            if name not in current:
                del self.deployments[name]
        for name, generation in current.items():
            old = self.deployments.get(name)
            if old is None or old.generation != generation or self._access_stale(old):
                self.deployments[name] = self._load(name, old)
        self._sync_bandits()
        wanted = {v for d in self.deployments.values() for v in (*d.live, *d.shadows)}
        for version_id in list(self.predictors):
            if version_id not in wanted:
                del self.predictors[version_id]
        self.monitor.refresh({d.id: d.name for d in self.deployments.values()}, self.predictors)

    def _sync_bandits(self) -> None:
        """Route with every replica's rewards (the store holds their sum)."""
        bandits = {
            d.id: d.router for d in self.deployments.values() if isinstance(d.router, Bandit)
        }
        if not bandits:
            return
        shared: dict[int, dict[int, tuple[float, float]]] = defaultdict(dict)
        with self.platform.store.read() as s:
            rows = s.scalars(select(EndpointArm).where(EndpointArm.endpoint_id.in_(bandits)))
            for r in rows:
                shared[r.endpoint_id][r.version_id] = (r.pulls, r.reward_sum)
        for endpoint_id, router in bandits.items():
            if shared.get(endpoint_id):
                router.sync(_arm_stats(shared[endpoint_id]))

    def _access_stale(self, d: Deployment) -> bool:
        """Project grants and members change without a generation bump: re-read them
        every few syncs (cheap: two small queries per endpoint)."""
        return self._random.random() < 0.2

    def _load(self, name: str, old: Deployment | None) -> Deployment:
        with self.platform.store.read() as s:
            ep = s.scalar(select(Endpoint).where(Endpoint.name == name))
            if ep is None:
                raise NotFound(f"endpoint {name!r} not found")
            project = s.get(Project, ep.project_id)
            assert project is not None
            consumers = dict(
                s.execute(
                    select(EndpointConsumer.org_id, EndpointConsumer.rate_limit_per_minute).where(
                        EndpointConsumer.endpoint_id == ep.id
                    )
                ).all()
            )
            targets = s.execute(
                select(EndpointTarget, ModelVersion)
                .join(ModelVersion, ModelVersion.id == EndpointTarget.version_id)
                .where(EndpointTarget.endpoint_id == ep.id)
                .order_by(EndpointTarget.id)
            ).all()
            files = {
                v.id: list(s.scalars(select(ModelFile).where(ModelFile.version_id == v.id)))
                for _, v in targets
                if v.id not in self.predictors
            }
            arms = dict(
                (r.version_id, (r.pulls, r.reward_sum))
                for r in s.scalars(select(EndpointArm).where(EndpointArm.endpoint_id == ep.id))
            )
            access = EndpointAccess(access_of(s, project), ep.audience, frozenset(consumers))
            routing, limits, monitoring = dict(ep.routing), dict(ep.limits), dict(ep.monitoring)
            generation, endpoint_id = ep.generation, ep.id
        for _, v in targets:  # load new versions before switching to them
            if v.id not in self.predictors:
                sig = Signature.from_dict(v.signature)
                directory = materialize(self.platform, files[v.id], self.cache_dir / str(v.id))
                self.predictors[v.id] = flavors.load(
                    v.flavor, directory, sig.names, accelerate=self.settings.serving_accelerate
                )
        live = [t.version_id for t, _ in targets if not t.shadow]
        shadows = [t.version_id for t, _ in targets if t.shadow]
        signature = Signature.from_dict(next(v for t, v in targets if not t.shadow).signature)
        router = self._router(routing, live, [t.weight for t, _ in targets if not t.shadow], old)
        if isinstance(router, Bandit) and arms:
            router.sync(_arm_stats(arms))
        return Deployment(
            endpoint_id, name, generation, access, consumers, limits, monitoring, signature,
            live, shadows, router,
            max_rows=limits.get("max_rows") or self.settings.serving_max_rows,
            sample_rate=float(monitoring.get("sample_rate", 0.0)),
        )  # fmt: skip

    @staticmethod
    def _router(
        routing: dict[str, Any], live: list[int], weights: list[int], old: Deployment | None
    ) -> TrafficSplit | Bandit:
        arms = [str(v) for v in live]
        if routing.get("mode") == "bandit":
            if old is not None and isinstance(old.router, Bandit) and old.router.arms == arms:
                return old.router
            if routing.get("policy") == "epsilon_greedy":
                return EpsilonGreedy(arms, epsilon=routing.get("epsilon", 0.1))
            return ThompsonSampling(arms)
        return TrafficSplit(dict(zip(arms, weights, strict=True)))

    # Callers -------------------------------------------------------------------------

    def principal(self, authorization: str | None, client_addr: str | None) -> Principal:
        if not authorization:
            return ANONYMOUS
        now = time.monotonic()
        # Keyed by the header itself: no hashing on the request path. The sync thread
        # re-checks every cached token each period (one query), so the request path
        # meets the store only for a token it has never seen; a cache older than a few
        # periods means that thread is stuck, and the store is asked again.
        cached = self._tokens.get(authorization)
        if cached is not None and now - cached[1] < 4 * self.settings.serving_token_ttl_s:
            if cached[0] is None:
                raise Unauthenticated("invalid, revoked or expired token")
            return cached[0]
        scheme, _, secret = authorization.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise Unauthenticated("use 'Authorization: Bearer <token>'")
        if len(self._tokens) > 100_000:
            self._tokens.clear()
        key = token_hash(secret)
        try:
            principal = resolve_token(self.platform, secret, client_addr)
        except Unauthenticated:
            self._tokens[authorization] = (None, now, key)
            raise
        self._tokens[authorization] = (principal, now, key)
        return principal

    def _refresh_tokens(self) -> None:
        """Re-check the cached tokens: revoked, expired or disabled ones stop working."""
        if not self._tokens:
            return
        now = time.monotonic()
        ttl = self.settings.serving_token_ttl_s
        cached = list(self._tokens.items())
        known = [key for _, (p, _, key) in cached if p is not None]
        valid = principals_by_hash(self.platform, known) if known else {}
        for header, (p, at, key) in cached:
            if p is not None:
                self._tokens[header] = (valid.get(key), now, key)
            elif now - at > ttl:  # unknown tokens: ask again after a while
                self._tokens.pop(header, None)

    def _decide(self, d: Deployment, principal: Principal) -> int | None:
        """``policy.decide_call``, remembered for this deployment snapshot and caller
        (both are replaced when anything they hold changes, so identity is the key)."""
        key = (id(d), id(principal))
        hit = self._decisions.get(key)
        if hit is not None and hit[0] is d and hit[1] is principal:
            return hit[2]
        org = decide_call(principal, d.access)  # raises for callers who may not call
        if len(self._decisions) > 100_000:
            self._decisions.clear()
        self._decisions[key] = (d, principal, org)
        return org

    def _admit(self, d: Deployment, principal: Principal, consumer: str, org: int | None) -> None:
        limit = d.consumer_limits.get(org) if org is not None else None
        limit = limit or d.limits.get("rate_per_minute")
        if not limit:
            return
        now = time.monotonic()
        key = (d.id, consumer)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [float(limit), now, float(limit)]
        bucket[2] = float(limit)
        rate = limit / 60.0
        bucket[0] = min(float(limit), bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if bucket[0] < 1.0:
            wait = math.ceil((1.0 - bucket[0]) / rate)
            raise RateLimited(
                f"rate limit of {limit} requests per minute exceeded; retry in {wait} s",
                retry_after=wait,
                details={"retry_after": wait, "limit_per_minute": limit},
            )
        bucket[0] -= 1.0

    def metrics(self, principal: Principal) -> bytes:
        """Prometheus series of the endpoints ``principal`` may read (names are labels:
        an anonymous scrape sees only those of public projects)."""
        if not self.monitor.names:
            return b""
        readable = readable_endpoints(self.platform.as_(principal))
        return self.monitor.prometheus(readable, LATENCY_BUCKETS_MS)

    # The request path ----------------------------------------------------------------

    def deployment(self, name: str) -> Deployment:
        d = self.deployments.get(name)
        if d is None:
            raise NotFound(f"endpoint {name!r} not found")
        return d

    def predict(
        self, name: str, authorization: str | None, body: bytes, client_addr: str | None = None
    ) -> Answer:
        """One request end to end (the embedded server's path; replicas batch instead)."""
        call = self.prepare(name, authorization, body, client_addr)
        if isinstance(call, Answer):
            return call
        try:
            out = self.predictors[call.version].predict(call.X)
        except Exception as e:
            return self.failed(call, e)
        return self.finish(call, out)

    def prepare(
        self, name: str, authorization: str | None, body: bytes, client_addr: str | None = None
    ) -> Call | Answer:
        """Everything before the model: the caller, limits, routing, the input matrix."""
        start = time.perf_counter()
        d = self.deployments.get(name)
        consumer = "anonymous"
        try:
            if d is None:
                raise NotFound(f"endpoint {name!r} not found")
            principal = self.principal(authorization, client_addr)
            org = self._decide(d, principal)
            consumer = principal.username
            self._admit(d, principal, consumer, org)
            if len(body) > self.settings.serving_max_body_bytes:
                raise InvalidInput(
                    f"the body is {len(body)} bytes; the limit is "
                    f"{self.settings.serving_max_body_bytes}"
                )
            obj = inputs.parse_body(body)
            live = d.live
            if len(live) == 1:
                version = live[0]
            else:
                version = int(live[int(d.router.choose_many(1, self._rng)[0])])
            if self.predictors[version].matrix_input:
                X: Any = inputs.to_matrix(obj, d.signature, d.max_rows)
            else:
                X = inputs.to_frame(obj, d.signature, d.max_rows)
        except OpenMaaSError as e:
            self._account(d, 0, consumer, 0, start, error=True, limited=type(e) is RateLimited)
            return _error(e)
        return Call(d, version, X, consumer, start, body)

    def failed(self, call: Call, e: Exception) -> Answer:
        """A model that fails on these rows: the caller's 422, the replica lives on."""
        log.warning("prediction failed on %s: %s", call.deployment.name, e)
        self._account(call.deployment, call.version, call.consumer, len(call.X), call.start,
                      error=True)  # fmt: skip
        return _error(InvalidInput(f"the model could not predict these rows: {e}"))

    def finish(self, call: Call, out: flavors.Output) -> Answer:
        """The answer for ``call`` from the model's output; shadows and accounting."""
        d, version = call.deployment, call.version
        request_id = f"{version}-{self._id_prefix}{next(self._ids):x}"
        predictions = out.predictions
        if predictions.dtype.kind in "OUS":  # text labels: orjson writes numbers only
            predictions = predictions.tolist()
        answer: dict[str, Any] = {
            "predictions": predictions,
            "request_id": request_id,
            "version": version,
        }
        if out.probabilities is not None:
            answer["probabilities"] = out.probabilities
            answer["classes"] = self.predictors[version].classes
        try:
            payload = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
        except TypeError as e:  # e.g. an object-dtype output of a custom model
            return self.failed(call, e)
        for shadow in d.shadows:
            self._shadow(d, shadow, call.X, out.predictions)
        window = self.monitor.window()
        self._account(d, version, call.consumer, len(call.X), call.start, error=False,
                      window=window)  # fmt: skip
        self.monitor.observe(d.id, version, call.X, out, request_id, window)
        if d.sample_rate and self._random.random() < d.sample_rate:
            self._log(d, "request", request_id, version, call.consumer, call.start, call.body,
                      payload)  # fmt: skip
        return Answer(200, payload)

    def _shadow(self, d: Deployment, version: int, X: Any, live: np.ndarray) -> None:
        start = time.perf_counter()
        try:
            out = self.predictors[version].predict(X)
            diff = np.abs(np.asarray(out.predictions, float) - np.asarray(live, float))
            state = self._state(d.id, version)
            state["shadow_rows"] = state.get("shadow_rows", 0) + len(diff)
            state["shadow_abs_diff_sum"] = state.get("shadow_abs_diff_sum", 0.0) + float(diff.sum())
            state["shadow_disagree"] = state.get("shadow_disagree", 0) + int((diff > 1e-9).sum())
            self._account(d, version, "shadow", len(diff), start, error=False, usage=False)
        except Exception:
            self._account(d, version, "shadow", 0, start, error=True, usage=False)

    def feedback(
        self, name: str, authorization: str | None, body: bytes, client_addr: str | None = None
    ) -> Answer:
        """A reward (bandits) and/or a label (live quality) for an earlier request."""
        try:
            d = self.deployment(name)
            principal = self.principal(authorization, client_addr)
            decide_call(principal, d.access)
            obj = inputs.parse_body(body)
            request_id = obj.get("request_id")
            if not isinstance(request_id, str) or "-" not in request_id:
                raise InvalidInput("request_id must be the id a prediction answered with")
            head = request_id.split("-", 1)[0]
            if not head.isdigit() or int(head) not in (*d.live, *d.shadows):
                raise InvalidInput(
                    f"request_id {request_id[:60]!r} is not from a version this endpoint serves"
                )
            version = int(head)
            reward = obj.get("reward")
            if reward is not None:  # checked before anything is recorded
                if not isinstance(reward, int | float) or not math.isfinite(reward):
                    raise InvalidInput(
                        "reward must be a finite number", details={"field": "reward"}
                    )
                if isinstance(d.router, Bandit):
                    low, high = d.router.reward_range
                    if not low <= reward <= high:
                        raise InvalidInput(d.router.reward_error, details={"field": "reward"})
            if obj.get("label") is not None:  # live quality: scored by the monitor
                self.monitor.label(d.id, version, request_id, obj["label"])
            if reward is not None:
                if isinstance(d.router, Bandit):
                    d.router.update(str(version), float(reward))
                state = self._state(d.id, version)
                state["feedback"] = state.get("feedback", 0) + 1
                state["reward_sum"] = state.get("reward_sum", 0.0) + float(reward)
            start = time.perf_counter()
            self._log(d, "feedback", request_id, version, principal.username, start, body, b"")
        except OpenMaaSError as e:
            return _error(e)
        return Answer(200, orjson.dumps({"request_id": request_id, "accepted": True}))

    # Accounting ----------------------------------------------------------------------

    def _state(
        self, endpoint_id: int, version: int, window: datetime | None = None
    ) -> dict[str, Any]:
        key = (endpoint_id, version, window or self.monitor.window())
        state = self._stats.get(key)
        if state is None:
            buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)
            state = self._stats[key] = {
                "requests": 0, "errors": 0, "rows": 0, "latency_ms_sum": 0.0,
                "latency_buckets": buckets,
            }  # fmt: skip
        return state

    def _today(self) -> str:
        """The UTC day of usage rows, recomputed once a second (not per request)."""
        second = int(time.time())
        if self._day[0] != second:
            self._day = (second, usage_day(datetime.fromtimestamp(second, UTC)))
        return self._day[1]

    def _account(
        self,
        d: Deployment | None,
        version: int,
        consumer: str,
        rows: int,
        start: float,
        *,
        error: bool,
        usage: bool = True,
        window: datetime | None = None,
        limited: bool = False,
    ) -> None:
        if d is None:
            return
        ms = (time.perf_counter() - start) * 1000
        state = self._state(d.id, version, window)
        state["requests"] += 1
        state["errors"] += int(error)
        state["rows"] += rows
        state["latency_ms_sum"] += ms
        i = bisect.bisect_left(LATENCY_BUCKETS_MS, ms)  # the first bucket with ms <= bound
        state["latency_buckets"][i] += 1
        if usage:
            day = self._today()
            counts = self._usage[(d.id, day, consumer[:80])]
            counts[0] += 1
            counts[1] += rows
            counts[2] += int(error)
            counts[3] += int(limited)

    def _log(
        self,
        d: Deployment,
        kind: str,
        request_id: str,
        version: int,
        consumer: str,
        start: float,
        body: bytes,
        payload: bytes,
    ) -> None:
        if len(self._records) >= self.log_per_sync:  # bounded: a trickle, whatever the load
            return
        try:
            request = orjson.loads(body) if len(body) <= MAX_LOGGED_BODY else {"truncated": True}
            response = orjson.loads(payload) if payload and len(payload) <= MAX_LOGGED_BODY else {}
        except orjson.JSONDecodeError:
            request, response = {}, {}
        self._records.append(
            EndpointRecord(
                endpoint_id=d.id, kind=kind, request_id=request_id, version_id=version,
                consumer=consumer[:80], latency_ms=(time.perf_counter() - start) * 1000,
                body={"request": request, "response": response},
            )
        )  # fmt: skip

    def flush(self) -> None:
        """Add this replica's counters to the store's (one transaction)."""
        with self._lock:
            usage, self._usage = self._usage, defaultdict(lambda: [0, 0, 0, 0])
            stats, self._stats = self._stats, {}
            records, self._records = self._records, []
            arms = {
                d.id: d.router.flush()
                for d in self.deployments.values()
                if isinstance(d.router, Bandit)
            }
        self.monitor.collect(stats)  # adds drift, prediction and quality states
        limited = self._limited_keys()
        if not (usage or stats or records or arms):
            if limited:  # nothing to add: a read is enough to learn the others' share
                with self.platform.store.read() as s:
                    totals = admitted(s, limited)
                self._share_limits(limited, totals, usage)
            return
        with self.platform.store.write() as s:
            # Counters of endpoints deleted meanwhile are dropped (one query, not one each).
            ids = {k[0] for k in usage} | {k[0] for k in stats} | set(arms)
            ids |= {r.endpoint_id for r in records}
            alive = set(s.scalars(select(Endpoint.id).where(Endpoint.id.in_(ids))))
            for (endpoint_id, day, consumer), (req, rows, err, lim) in usage.items():
                if endpoint_id not in alive:
                    continue
                add_usage(s, endpoint_id, day, consumer, req, rows, err, lim)
            for (endpoint_id, version, window), state in stats.items():
                if endpoint_id not in alive:
                    continue
                row = s.scalar(
                    select(EndpointStat).where(
                        EndpointStat.endpoint_id == endpoint_id,
                        EndpointStat.version_id == version,
                        EndpointStat.window_start == window,
                    )
                )
                if row is None:
                    s.add(EndpointStat(endpoint_id=endpoint_id, version_id=version,
                                       window_start=window, state=state))  # fmt: skip
                else:
                    row.state = _merge(dict(row.state), state)
            s.add_all(r for r in records if r.endpoint_id in alive)
            for endpoint_id, delta in arms.items():
                if endpoint_id not in alive:
                    continue
                for arm, pulls, reward in zip(delta.arms, delta.pulls, delta.rewards, strict=True):
                    if not pulls:
                        continue
                    pulls, reward = float(pulls), float(reward)
                    row = s.get(EndpointArm, (endpoint_id, int(arm)))
                    if row is None:
                        s.add(EndpointArm(endpoint_id=endpoint_id, version_id=int(arm),
                                          pulls=pulls, reward_sum=reward))  # fmt: skip
                    else:
                        row.pulls += pulls
                        row.reward_sum += reward
            totals = admitted(s, limited)
        self._share_limits(limited, totals, usage)

    # One rate limit over every replica ---------------------------------------------------

    def _limited_keys(self) -> dict[tuple[int, str, str], tuple[int, str]]:
        """Today's usage key of every rate-limit bucket -> the bucket's key; buckets idle
        for ``BUCKET_IDLE_S`` are dropped (they would be full again)."""
        day, now = self._today(), time.monotonic()
        keys = {}
        for key, bucket in list(self._buckets.items()):
            if now - bucket[1] > BUCKET_IDLE_S:
                self._buckets.pop(key, None)
            else:
                keys[(key[0], day, key[1][:80])] = key
        return keys

    def _share_limits(
        self,
        keys: dict[tuple[int, str, str], tuple[int, str]],
        totals: dict[tuple[int, str, str], int],
        usage: dict[tuple[int, str, str], list[int]],
    ) -> None:
        """Take from each bucket what the other replicas admitted since the last sync.

        Every replica refills its bucket at the limit's rate and pays for every
        admitted request, its own at once and the others' here (a second late), so
        all of them together admit about the limit, however a balancer spreads the
        calls. A bucket may owe up to one limit's worth.
        """
        seen, self._admitted = self._admitted, {}
        for key, total in totals.items():
            self._admitted[key] = total
            before = seen.get(key)
            own = usage.get(key)
            others = 0 if before is None else total - before - (own[0] - own[3] if own else 0)
            bucket = self._buckets.get(keys[key])
            if others > 0 and bucket is not None:
                bucket[0] = max(-bucket[2], bucket[0] - others)


def _arm_stats(arms: dict[int, tuple[float, float]]) -> ArmStats:
    keys = sorted(arms)
    return ArmStats(
        [str(k) for k in keys], [int(arms[k][0]) for k in keys], [arms[k][1] for k in keys]
    )


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    for key, value in b.items():
        if isinstance(value, list):
            old = a.get(key) or [0] * len(value)
            a[key] = [x + y for x, y in zip(old, value, strict=False)]
        elif isinstance(value, int | float):
            a[key] = a.get(key, 0) + value
        elif isinstance(value, dict):  # state["monitor"]
            a[key] = merge_monitor(a.get(key), value)
    return a


def _error(e: OpenMaaSError) -> Answer:
    body = orjson.dumps({"error": e.to_dict()})
    headers = []
    if isinstance(e, RateLimited):
        headers.append(("retry-after", str(math.ceil(e.retry_after))))
    return Answer(e.status, body, headers)
