"""Request and response bodies of batch scoring."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from openmaas.api.schemas import In, Out
from openmaas.store.metadata.tables import Job


class ScoreDatasetIn(In):
    dataset_id: int = Field(ge=1, le=2**31 - 1)
    version: int | str = Field(default="latest", description="a version number or 'latest'")


class ScoringResultOut(Out):
    digest: str
    size_bytes: int
    rows: int
    seconds: float
    columns: list[str]
    classes: list[Any] | None = None


class ScoringJobOut(Out):
    id: int
    state: str
    project_id: int | None
    model_id: int
    model: str
    version: int
    endpoint: str | None
    input: dict[str, Any]
    progress: dict[str, Any]
    result: ScoringResultOut | None
    error: str | None
    error_code: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> ScoringJobOut:
        p = job.payload
        source = {k: v for k, v in p.get("input", {}).items() if k != "digest"}
        done = job.state == "succeeded" and bool((job.result or {}).get("digest"))
        return cls(
            id=job.id, state=job.state, project_id=job.project_id, model_id=p["model_id"],
            model=p["model"], version=p["version"], endpoint=p.get("endpoint"), input=source,
            progress=job.progress or {},
            result=ScoringResultOut.model_validate(job.result) if done else None,
            error=job.error, error_code=job.error_code, created_at=job.created_at,
            started_at=job.started_at, finished_at=job.finished_at,
        )  # fmt: skip
