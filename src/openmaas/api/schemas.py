"""Request and response bodies of the REST API (the OpenAPI schema comes from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from openmaas.domain.pages import MAX_ID

T = TypeVar("T")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorOut(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    database: str


# Identity ----------------------------------------------------------------------------


class LoginIn(In):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)
    token_name: str = Field(default="login", max_length=100)


class UserIn(In):
    username: str = Field(max_length=64)
    password: str | None = Field(default=None, max_length=1024)
    email: str | None = Field(default=None, max_length=320)
    display_name: str = Field(default="", max_length=200)
    is_admin: bool = False


class PasswordIn(In):
    old_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class UserOut(Out):
    id: int
    username: str
    display_name: str
    is_admin: bool
    is_service: bool
    created_at: datetime


class MeOut(UserOut):
    orgs: dict[str, str] = Field(description="organisation name -> your role")
    scopes: list[str]


class TokenIn(In):
    name: str = Field(default="token", max_length=100)
    scopes: list[str] = Field(default=["read", "write"], max_length=3)
    expires_in_days: float | None = Field(default=None, gt=0, le=3650)


class TokenOut(Out):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    token: str = Field(description="The secret; shown only now.")


# Organisations -------------------------------------------------------------------------


class OrgIn(In):
    name: str = Field(max_length=64)
    display_name: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=10_000)


class OrgPatch(In):
    display_name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)


class OrgOut(Out):
    id: int
    name: str
    display_name: str
    description: str
    created_at: datetime


class RoleIn(In):
    role: Literal["viewer", "contributor", "maintainer", "owner"]


class MemberOut(BaseModel):
    username: str
    role: str
    is_service: bool = False


class ServiceAccountIn(In):
    name: str = Field(max_length=48)
    role: Literal["viewer", "contributor", "maintainer"] = "contributor"
    description: str = Field(default="", max_length=200)


# Projects ------------------------------------------------------------------------------


class ProjectIn(In):
    org: str = Field(max_length=64)
    name: str = Field(max_length=64)
    visibility: Literal["private", "public"] = "private"
    description: str = Field(default="", max_length=10_000)
    licence: str | None = Field(default=None, max_length=200)
    citation: str | None = Field(default=None, max_length=10_000)


class ProjectPatch(In):
    visibility: Literal["private", "public"] | None = None
    description: str | None = Field(default=None, max_length=10_000)
    licence: str | None = Field(default=None, max_length=200)
    citation: str | None = Field(default=None, max_length=10_000)


class TransferIn(In):
    org: str = Field(max_length=64)


class ProjectOut(BaseModel):
    id: int
    org: str
    name: str
    full_name: str
    visibility: str
    description: str
    licence: str | None
    citation: str | None
    created_at: datetime
    updated_at: datetime
    role: str | None = Field(default=None, description="Your role on the project.")


class GrantOut(BaseModel):
    org: str
    role: str
    created_at: datetime


class AuditOut(Out):
    id: int
    at: datetime
    actor: str
    action: str
    resource_type: str
    resource_id: str
    project_id: int | None
    client_addr: str | None
    details: dict[str, Any]


# Datasets ------------------------------------------------------------------------------


class ColumnOut(BaseModel):
    name: str
    kind: str
    dtype: str


class DatasetOut(BaseModel):
    id: int
    project_id: int
    project: str
    name: str
    description: str
    source: str | None
    licence: str | None
    citation: str | None
    tags: list[str]
    latest_version: int
    deprecated: bool
    deprecation_reason: str | None
    created_at: datetime
    updated_at: datetime


class VersionOut(BaseModel):
    dataset_id: int
    version: int
    parent_version: int | None
    digest: str = Field(description="sha256 of the stored Parquet file")
    n_rows: int
    n_columns: int
    size_bytes: int
    columns: list[ColumnOut]
    source_format: str
    source_bytes: int
    note: str
    created_at: datetime


class DatasetCreatedOut(BaseModel):
    dataset: DatasetOut
    version: VersionOut


class CardPatch(In):
    description: str | None = Field(default=None, max_length=100_000)
    source: str | None = Field(default=None, max_length=10_000)
    licence: str | None = Field(default=None, max_length=200)
    citation: str | None = Field(default=None, max_length=10_000)
    tags: list[str] | None = Field(default=None, max_length=50)


class DeprecateIn(In):
    reason: str = Field(min_length=1, max_length=10_000)


# Tasks ---------------------------------------------------------------------------------


class TaskIn(In):
    name: str = Field(max_length=128)
    dataset_id: int = Field(ge=1, le=MAX_ID)
    dataset_version: Annotated[int, Field(ge=1, le=MAX_ID)] | Literal["latest"] = "latest"
    spec: dict[str, Any] = Field(description="The task definition (see TaskSpec).")
    description: str = Field(default="", max_length=100_000)
    licence: str | None = Field(default=None, max_length=200)
    citation: str | None = Field(default=None, max_length=10_000)


class TaskPatch(In):
    description: str | None = Field(default=None, max_length=100_000)
    licence: str | None = Field(default=None, max_length=200)
    citation: str | None = Field(default=None, max_length=10_000)


class RebaseIn(In):
    dataset_version: Annotated[int, Field(ge=1, le=MAX_ID)] | Literal["latest"] = "latest"


class TaskOut(BaseModel):
    id: int
    project_id: int
    name: str
    version: int
    parent_id: int | None
    dataset_id: int
    dataset_name: str
    dataset_version: int
    task_type: str
    spec: dict[str, Any]
    n_rows: int
    description: str
    licence: str | None
    citation: str | None
    created_at: datetime


# Runs ----------------------------------------------------------------------------------


class RunIn(In):
    algorithm: str = Field(max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = Field(default=0, ge=0, le=MAX_ID)
    name: str = Field(default="", max_length=128)
    parent_run_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    memory_limit_mb: int | None = Field(
        default=None,
        ge=1,
        le=2**20,
        description="The run's own memory limit in MB; the worker's own limit still applies "
        "if lower. A run over it fails cleanly.",
    )
    divergence_retries: int = Field(
        default=0,
        ge=0,
        le=5,
        description="When training diverges, run again with the learning rate divided by 10, "
        "up to this many times (algorithms with a learning_rate only).",
    )


class RunOut(BaseModel):
    id: int
    task_id: int
    task_name: str
    project_id: int
    kind: str
    name: str
    algorithm: str
    params: dict[str, Any]
    seed: int
    state: str
    metric: str
    score: float | None
    score_std: float | None
    metrics: dict[str, Any]
    parent_id: int | None
    job_id: int | None
    progress: dict[str, Any]
    error: str | None
    contributor: str
    wall_time_s: float | None
    peak_rss_mb: float | None
    environment: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None
    memory_limit_mb: int | None = None
    divergence_retries: int = 0


class ArtifactOut(Out):
    name: str
    digest: str
    size_bytes: int
    media_type: str


class LogOut(Out):
    id: int
    attempt: int
    at: datetime
    level: str
    message: str


class LeaderboardEntryOut(BaseModel):
    rank: int
    run_id: int
    score: float | None
    score_std: float | None
    algorithm: str
    params: dict[str, Any]
    kind: str
    contributor: str
    organisations: list[str]
    wall_time_s: float | None
    created_at: datetime


class LeaderboardOut(BaseModel):
    task_id: int
    metric: str
    direction: str
    items: list[LeaderboardEntryOut]
    total: int
    limit: int
    offset: int
