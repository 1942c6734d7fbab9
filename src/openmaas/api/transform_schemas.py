"""Request and response bodies of model transforms (compression)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from openmaas.api.schemas import In, Out
from openmaas.store.metadata.tables import Job


class TransformIn(In):
    kind: Literal["onnx", "quantize", "distill"] = Field(
        description="onnx (export), quantize (int8 weights of a dnn) or distill (a small student)"
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="task_id (the task to evaluate on, or to distill from); quantize: "
        "per_channel; distill: student (lightgbm, mlp) and student_params",
    )


class TransformResultOut(Out):
    version_id: int
    version: int
    flavor: str
    report: dict[str, Any]


class TransformJobOut(Out):
    id: int
    state: str
    project_id: int | None
    model_id: int
    model: str
    version: int = Field(description="the version transformed")
    kind: str
    params: dict[str, Any]
    task_id: int | None
    progress: dict[str, Any]
    result: TransformResultOut | None = Field(description="the new version, once succeeded")
    error: str | None
    error_code: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> TransformJobOut:
        p = job.payload
        done = job.state == "succeeded" and bool((job.result or {}).get("version_id"))
        return cls(
            id=job.id, state=job.state, project_id=job.project_id, model_id=p["model_id"],
            model=p["model"], version=p["version"], kind=p["kind"], params=p.get("params") or {},
            task_id=p.get("task_id"), progress=job.progress or {},
            result=TransformResultOut.model_validate(job.result) if done else None,
            error=job.error, error_code=job.error_code, created_at=job.created_at,
            started_at=job.started_at, finished_at=job.finished_at,
        )  # fmt: skip
