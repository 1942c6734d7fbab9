"""Batch scoring: predictions for a whole dataset version or uploaded file, as a job.

A scoring job runs a model version (or the version an endpoint's deployment
gives most traffic) over every row of its input and stores the predictions as
one Parquet blob. Everything a job needs is checked before it is queued (the
version exists and loads from a servable flavour, the input exists and has
the model's columns), so a bad request is a 4xx and queues nothing.

Who may score: contributors of the model's project score a version
(``create``); whoever may call an endpoint (``policy.decide_call``) scores
through it, signed in, since the job and its result belong to someone. A job
through an endpoint adds one request and its rows to the caller's usage of
that endpoint when it succeeds (jobs are queued, not rate limited). A job
is read by its creator, and by the project's maintainers (``audit``).

No table of its own: the job row's ``payload`` says what to score and its
``result`` where the predictions are (``digest``, ``rows``, ``seconds``);
``referenced_digests`` tells garbage collection about both.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from openmaas.domain import audit
from openmaas.domain import datasets as datasets_domain
from openmaas.domain.context import Ctx
from openmaas.domain.jobs import SUCCEEDED, enqueue
from openmaas.domain.policy import Action, EndpointAccess, decide_call
from openmaas.domain.projects import access_of, authorize
from openmaas.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unauthenticated
from openmaas.ml.data.growing import Src, open_binary
from openmaas.ml.data.schema import Limits
from openmaas.ml.flavors import Signature
from openmaas.ml.scoring import check_columns, check_format, input_columns
from openmaas.store.metadata.tables import (
    Endpoint,
    EndpointConsumer,
    EndpointTarget,
    Job,
    Model,
    ModelVersion,
    Project,
)

KIND = "score"
RESULT_FORMATS = ("parquet", "csv")
PARQUET = "application/vnd.apache.parquet"
_STATES = {
    "queued": "it is still queued",
    "running": "it is still running",
    "failed": "it failed",
    "cancelled": "it was cancelled",
}


@dataclass(frozen=True)
class VersionRef:
    """Score with version ``version`` of model ``model_id``."""

    model_id: int
    version: int


@dataclass(frozen=True)
class EndpointRef:
    """Score with the version endpoint ``name`` gives the most traffic."""

    name: str


Target = VersionRef | EndpointRef


@dataclass(frozen=True)
class _Resolved:
    project_id: int
    model: Model
    version: ModelVersion
    endpoint: str | None
    endpoint_id: int | None = None

    @property
    def signature(self) -> Signature:
        return Signature.from_dict(self.version.signature)


# Resolving what scores ------------------------------------------------------------


def _resolve(ctx: Ctx, s: Session, target: Target) -> _Resolved:
    if isinstance(target, EndpointRef):
        return _resolve_endpoint(ctx, s, target.name)
    model = s.get(Model, target.model_id)
    if model is None:
        raise NotFound("model not found")
    authorize(ctx, s, model.project_id, Action.create, kind="model")
    version = s.scalar(
        select(ModelVersion).where(
            ModelVersion.model_id == model.id, ModelVersion.version == target.version
        )
    )
    if version is None:
        raise NotFound(f"model {model.name!r} has no version {target.version}")
    _check_servable(ctx, model, version)
    return _Resolved(model.project_id, model, version, None)


def _resolve_endpoint(ctx: Ctx, s: Session, name: str) -> _Resolved:
    ep = s.scalar(select(Endpoint).where(Endpoint.name == name))
    if ep is None:
        raise NotFound(f"endpoint {name!r} not found")
    project = s.get(Project, ep.project_id)
    assert project is not None
    consumers = frozenset(
        s.scalars(select(EndpointConsumer.org_id).where(EndpointConsumer.endpoint_id == ep.id))
    )
    decide_call(ctx.principal, EndpointAccess(access_of(s, project), ep.audience, consumers))
    if not ctx.principal.authenticated:
        raise Unauthenticated(f"log in to score with endpoint {name!r}")
    version = s.scalar(
        select(ModelVersion)
        .join(EndpointTarget, EndpointTarget.version_id == ModelVersion.id)
        .where(EndpointTarget.endpoint_id == ep.id, EndpointTarget.shadow.is_(False))
        .order_by(EndpointTarget.weight.desc(), EndpointTarget.id)
        .limit(1)
    )
    if version is None:
        raise Conflict(f"endpoint {name!r} serves no version")
    model = s.get(Model, version.model_id)
    assert model is not None
    _check_servable(ctx, model, version)
    return _Resolved(ep.project_id, model, version, ep.name, ep.id)


def _check_servable(ctx: Ctx, model: Model, version: ModelVersion) -> None:
    if version.flavor == "pickle" and not ctx.settings.allow_pickle_models:
        raise InvalidInput(
            f"version {version.version} of {model.name!r} is a pickle and pickles are disabled",
            details={"field": "version"},
        )


def _limits(ctx: Ctx) -> Limits:
    s = ctx.settings
    return Limits(max_field_bytes=s.max_field_bytes, max_rows=s.max_rows, max_columns=s.max_columns)


# Creating jobs ----------------------------------------------------------------------


def score_dataset(ctx: Ctx, target: Target, dataset_id: int, version: int | str = "latest") -> Job:
    """Queue a job scoring a dataset version (which the caller must be able to read)."""
    with ctx.store.read() as s:
        signature = _resolve(ctx, s, target).signature
    try:
        ds, row = datasets_domain.get_version(ctx, dataset_id, version)
    except NotFound as e:
        raise NotFound(e.message, details={**e.details, "field": "dataset_id"}) from None
    check_columns([c["name"] for c in row.columns], signature)
    source = {
        "source": "dataset", "dataset_id": ds.id, "dataset": ds.name,
        "dataset_version": row.version, "digest": row.digest, "format": "parquet",
        "rows": row.n_rows,
    }  # fmt: skip
    with ctx.store.write() as s:
        return _enqueue(ctx, s, _resolve(ctx, s, target), source)


def score_upload(ctx: Ctx, target: Target, upload: Src, fmt: str, filename: str = "") -> Job:
    """Queue a job scoring an uploaded CSV, Parquet or JSON Lines file, stored first as a blob.

    The caller and the file's columns are checked before anything is stored
    (the header arrives first; a Parquet file's column list at its end).
    """
    fmt = check_format(fmt)
    with ctx.store.read() as s:
        signature = _resolve(ctx, s, target).signature
    check_columns(input_columns(upload, fmt, _limits(ctx)), signature)
    with open_binary(upload) as f:
        info = ctx.artifacts.put_stream(f)
    with ctx.store.write() as s:
        resolved = _resolve(ctx, s, target)
        source = {
            "source": "upload", "digest": info.digest, "format": fmt,
            "filename": filename[:200], "bytes": info.size,
        }  # fmt: skip
        return _enqueue(ctx, s, resolved, source)


def _enqueue(ctx: Ctx, s: Session, r: _Resolved, source: dict[str, Any]) -> Job:
    payload = {
        "model_id": r.model.id, "model": r.model.name, "version": r.version.version,
        "version_id": r.version.id, "endpoint": r.endpoint, "input": source,
    }  # fmt: skip
    if r.endpoint_id is not None:  # the endpoint's usage counts the job's rows for its caller
        payload["usage"] = {"endpoint_id": r.endpoint_id, "consumer": ctx.principal.username}
    job = enqueue(
        s, KIND, payload, project_id=r.project_id, created_by=ctx.principal.user_id, max_attempts=2
    )
    audit.record(
        s, ctx.principal, "scoring.create", "job", job.id, project_id=r.project_id,
        details={k: v for k, v in payload.items() if k != "input"} | {"source": source["source"]},
    )  # fmt: skip
    return job


# Reading jobs and results -----------------------------------------------------------


def _load(ctx: Ctx, s: Session, job_id: int) -> Job:
    job = s.get(Job, job_id)
    if job is None or job.kind != KIND or job.project_id is None:
        raise NotFound("scoring job not found")
    p = ctx.principal
    if p.user_id is not None and job.created_by == p.user_id:
        if not {"read", "predict"} & set(p.scopes):
            raise PermissionDenied(
                "this token lacks the 'read' scope", details={"required_scope": "read"}
            )
        return job
    authorize(ctx, s, job.project_id, Action.audit, kind="scoring job")
    return job


def get(ctx: Ctx, job_id: int) -> Job:
    """A scoring job its creator or a maintainer of its project reads (404 otherwise)."""
    with ctx.store.read() as s:
        return _load(ctx, s, job_id)


def result(ctx: Ctx, job_id: int, fmt: str = "parquet") -> tuple[Job, Iterator[bytes], str]:
    """The predictions of a succeeded job, streamed as Parquet (as stored) or CSV."""
    if fmt not in RESULT_FORMATS:
        raise InvalidInput(
            f"unsupported result format {fmt!r}; use parquet or csv", details={"field": "format"}
        )
    job = get(ctx, job_id)
    if job.state != SUCCEEDED or not (job.result or {}).get("digest"):
        why = f" ({job.error})" if job.error else ""
        raise Conflict(
            f"scoring job {job_id} has no result: {_STATES.get(job.state, job.state)}{why}",
            details={"state": job.state},
        )
    digest = str(job.result["digest"])  # type: ignore[index]
    if fmt == "parquet":
        return job, ctx.artifacts.iter_chunks(digest), PARQUET
    return job, _csv_chunks(ctx, digest), "text/csv"


def _csv_chunks(ctx: Ctx, digest: str) -> Iterator[bytes]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    with ctx.artifacts.open(digest) as f:
        pf = pq.ParquetFile(f)
        first = True
        for batch in pf.iter_batches(batch_size=65_536):
            buf = io.BytesIO()
            pacsv.write_csv(batch, buf, pacsv.WriteOptions(include_header=first))
            first = False
            yield buf.getvalue()
        if first:
            buf = io.BytesIO()
            pacsv.write_csv(pf.schema_arrow.empty_table(), buf)
            yield buf.getvalue()


def referenced_digests(s: Session) -> set[str]:
    """Blobs scoring jobs refer to (their input and their result), for garbage collection."""
    out: set[str] = set()
    for payload, res in s.execute(select(Job.payload, Job.result).where(Job.kind == KIND)):
        for digest in ((payload or {}).get("input", {}).get("digest"), (res or {}).get("digest")):
            if isinstance(digest, str) and digest:
                out.add(digest)
    return out
