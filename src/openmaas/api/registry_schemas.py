"""Request and response bodies of the model registry and endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from openmaas.api.schemas import In, Out
from openmaas.domain.endpoints import EndpointView
from openmaas.domain.models import ModelView, VersionView


class ModelIn(In):
    name: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=100_000)
    intended_use: str = Field(default="", max_length=100_000)
    licence: str | None = Field(default=None, max_length=200)
    citation: str | None = Field(default=None, max_length=10_000)
    tags: list[str] = Field(default_factory=list, max_length=50)


class ModelPatch(In):
    description: str | None = Field(default=None, max_length=100_000)
    intended_use: str | None = Field(default=None, max_length=100_000)
    licence: str | None = Field(default=None, max_length=200)
    citation: str | None = Field(default=None, max_length=10_000)
    tags: list[str] | None = Field(default=None, max_length=50)


class ModelOut(Out):
    id: int
    project_id: int
    project: str
    name: str
    description: str
    intended_use: str
    licence: str | None
    citation: str | None
    tags: list[str]
    latest_version: int
    aliases: dict[str, int]
    created_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, v: ModelView) -> ModelOut:
        m = v.model
        return cls(
            id=m.id, project_id=m.project_id, project=v.project, name=m.name,
            description=m.description, intended_use=m.intended_use, licence=m.licence,
            citation=m.citation, tags=list(m.tags or []), latest_version=m.latest_version,
            aliases=v.aliases, created_by=v.creator, created_at=m.created_at,
            updated_at=m.updated_at,
        )  # fmt: skip


class VersionFromRunIn(In):
    run_id: int = Field(ge=1, le=2**31 - 1)
    description: str = Field(default="", max_length=100_000)


class AliasIn(In):
    version: int = Field(ge=1, le=2**31 - 1)


class ModelFileOut(Out):
    path: str
    size_bytes: int
    digest: str


class VersionOut(Out):
    id: int
    model_id: int
    model: str
    project: str
    version: int
    flavor: str
    source: str
    description: str
    signature: dict[str, Any]
    task_type: str | None
    metrics: dict[str, Any]
    transform: dict[str, Any] | None
    size_bytes: int
    aliases: list[str]
    lineage: dict[str, int | None]
    files: list[ModelFileOut]
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, v: VersionView) -> VersionOut:
        r = v.version
        return cls(
            id=r.id, model_id=r.model_id, model=v.model.name, project=v.project,
            version=r.version, flavor=r.flavor, source=r.source, description=r.description,
            signature=r.signature, task_type=r.task_type, metrics=r.metrics,
            transform=r.transform, size_bytes=r.size_bytes, aliases=v.aliases,
            lineage={"run_id": r.run_id, "task_id": r.task_id,
                     "dataset_version_id": r.dataset_version_id, "parent_id": r.parent_id},
            files=[ModelFileOut(path=f.path, size_bytes=f.size_bytes, digest=f.digest)
                   for f in v.files],
            created_by=v.creator, created_at=r.created_at,
        )  # fmt: skip


class ModelEventOut(Out):
    id: int
    at: datetime
    actor: str
    action: str
    version: int | None
    alias: str | None
    details: dict[str, Any]


class TargetIn(In):
    version_id: int = Field(ge=1, le=2**31 - 1)
    weight: int = Field(default=0, ge=0, le=100)
    shadow: bool = False


class EndpointIn(In):
    name: str = Field(min_length=1, max_length=64)
    targets: list[TargetIn] = Field(min_length=1, max_length=20)
    description: str = Field(default="", max_length=100_000)
    audience: str = Field(default="project", max_length=16)
    routing: dict[str, Any] | None = None
    limits: dict[str, Any] | None = None
    monitoring: dict[str, Any] | None = None


class EndpointPatch(In):
    description: str | None = Field(default=None, max_length=100_000)
    audience: str | None = Field(default=None, max_length=16)
    limits: dict[str, Any] | None = None
    monitoring: dict[str, Any] | None = None


class DeploymentIn(In):
    targets: list[TargetIn] = Field(min_length=1, max_length=20)
    routing: dict[str, Any] | None = None


class ConsumerIn(In):
    rate_per_minute: int | None = Field(default=None, ge=1, le=10**9)


class TargetOut(Out):
    version_id: int
    model: str
    version: int
    weight: int
    shadow: bool


class EndpointOut(Out):
    id: int
    name: str
    project_id: int
    project: str
    description: str
    audience: str
    routing: dict[str, Any]
    limits: dict[str, Any]
    monitoring: dict[str, Any]
    generation: int
    targets: list[TargetOut]
    consumers: dict[str, int | None]
    url: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, v: EndpointView) -> EndpointOut:
        e = v.endpoint
        return cls(
            id=e.id, name=e.name, project_id=e.project_id, project=v.project,
            description=e.description, audience=e.audience, routing=e.routing, limits=e.limits,
            monitoring=e.monitoring, generation=e.generation,
            targets=[TargetOut(**t.__dict__) for t in v.targets], consumers=v.consumers,
            url=f"/api/v1/endpoints/{e.name}/predict", created_at=e.created_at,
            updated_at=e.updated_at,
        )  # fmt: skip


class UsageOut(Out):
    day: str
    consumer: str
    requests: int
    rows: int
    errors: int
    limited: int  # of the requests, refused by the rate limit (429; counted in errors)


class StatOut(Out):
    version_id: int
    window_start: datetime
    state: dict[str, Any]


class RecordOut(Out):
    id: int
    kind: str
    request_id: str
    version_id: int | None
    at: datetime
    consumer: str
    latency_ms: float | None
    body: dict[str, Any]
