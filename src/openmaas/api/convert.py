"""Domain objects to response bodies."""

from __future__ import annotations

from openmaas.api import schemas
from openmaas.domain.datasets import DatasetView
from openmaas.domain.runs import Entry, RunView
from openmaas.domain.tasks import TaskView
from openmaas.store.metadata.tables import DatasetVersion, Project


def project(p: Project, org: str, role: str | None = None) -> schemas.ProjectOut:
    return schemas.ProjectOut(
        id=p.id,
        org=org,
        name=p.name,
        full_name=f"{org}/{p.name}",
        visibility=p.visibility,
        description=p.description,
        licence=p.licence,
        citation=p.citation,
        created_at=p.created_at,
        updated_at=p.updated_at,
        role=role,
    )


def dataset(v: DatasetView) -> schemas.DatasetOut:
    d = v.dataset
    return schemas.DatasetOut(
        id=d.id,
        project_id=d.project_id,
        project=f"{v.org_name}/{v.project.name}",
        name=d.name,
        description=d.description,
        source=d.source,
        licence=d.licence,
        citation=d.citation,
        tags=v.tags,
        latest_version=d.latest_version,
        deprecated=d.deprecated_at is not None,
        deprecation_reason=d.deprecation_reason,
        created_at=d.created_at,
        updated_at=d.updated_at,
    )


def version(v: DatasetVersion, parent_version: int | None = None) -> schemas.VersionOut:
    return schemas.VersionOut(
        dataset_id=v.dataset_id,
        version=v.version,
        parent_version=parent_version
        if parent_version is not None
        else (v.version - 1 if v.parent_id else None),
        digest=v.digest,
        n_rows=v.n_rows,
        n_columns=v.n_columns,
        size_bytes=v.size_bytes,
        columns=[schemas.ColumnOut(**c) for c in v.columns],
        source_format=v.source_format,
        source_bytes=v.source_bytes,
        note=v.note,
        created_at=v.created_at,
    )


def task(v: TaskView) -> schemas.TaskOut:
    t = v.task
    return schemas.TaskOut(
        id=t.id,
        project_id=t.project_id,
        name=t.name,
        version=t.version,
        parent_id=t.parent_id,
        dataset_id=v.dataset.id,
        dataset_name=v.dataset.name,
        dataset_version=v.dataset_version.version,
        task_type=t.task_type,
        spec=t.spec,
        n_rows=t.n_rows,
        description=t.description,
        licence=t.licence,
        citation=t.citation,
        created_at=t.created_at,
    )


def run(v: RunView) -> schemas.RunOut:
    r = v.run
    return schemas.RunOut(
        id=r.id,
        task_id=r.task_id,
        task_name=v.task.name,
        project_id=r.project_id,
        kind=r.kind,
        name=r.name,
        algorithm=r.algorithm,
        params=r.params,
        seed=r.seed,
        state=v.state,
        metric=r.metric,
        score=r.score,
        score_std=r.score_std,
        metrics=r.metrics,
        parent_id=r.parent_id,
        job_id=r.job_id,
        progress=v.job.progress if v.job and v.state == "running" else {},
        error=v.error,
        contributor=v.creator,
        wall_time_s=r.wall_time_s,
        peak_rss_mb=r.peak_rss_mb,
        environment=r.environment,
        created_at=r.created_at,
        finished_at=r.finished_at,
        **v.options,
    )


def entry(e: Entry) -> schemas.LeaderboardEntryOut:
    r = e.run
    return schemas.LeaderboardEntryOut(
        rank=e.rank,
        run_id=r.id,
        score=r.score,
        score_std=r.score_std,
        algorithm=r.algorithm,
        params=r.params,
        kind=r.kind,
        contributor=e.contributor,
        organisations=e.organisations,
        wall_time_s=r.wall_time_s,
        created_at=r.created_at,
    )
