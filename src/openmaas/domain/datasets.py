"""Datasets: immutable, profiled Parquet versions with a data card.

An upload becomes visible all at once or not at all: the file is parsed into a
temporary Parquet file, both it and its profile are stored as content-addressed
blobs, and only then one transaction records the dataset and its version. A
failure at any step leaves at most an unreferenced blob, which ``gc`` removes.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from openmaas.domain import audit
from openmaas.domain.context import Ctx
from openmaas.domain.names import check_name, check_tags
from openmaas.domain.pages import MAX_ID, Page, check_window, page_of
from openmaas.domain.policy import Action
from openmaas.domain.projects import authorize
from openmaas.errors import Conflict, InvalidInput, NotFound
from openmaas.ml.data import ColumnSchema, IngestResult, Limits, append_file, ingest_file
from openmaas.ml.data.growing import Src
from openmaas.store.metadata.scoped import readable_projects
from openmaas.store.metadata.tables import (
    Dataset,
    DatasetTag,
    DatasetVersion,
    Organization,
    Project,
    Task,
)

Format = Literal["csv", "parquet", "jsonl"]
FORMATS: tuple[str, ...] = ("csv", "parquet", "jsonl")


@dataclass(frozen=True)
class Card:
    """The data card: what a dataset is, where it comes from, how it may be used."""

    description: str | None = None
    source: str | None = None
    licence: str | None = None
    citation: str | None = None
    tags: list[str] | None = None


@dataclass(frozen=True)
class DatasetView:
    dataset: Dataset
    project: Project
    org_name: str
    tags: list[str]


def check_format(fmt: str) -> Format:
    if fmt not in FORMATS:
        raise InvalidInput(
            f"unsupported format {fmt!r}; use one of {', '.join(FORMATS)}",
            details={"field": "format"},
        )
    return fmt  # type: ignore[return-value]


def _limits(ctx: Ctx) -> Limits:
    s = ctx.settings
    return Limits(max_field_bytes=s.max_field_bytes, max_rows=s.max_rows, max_columns=s.max_columns)


@contextlib.contextmanager
def _scratch(ctx: Ctx) -> Iterator[Path]:
    path = ctx.settings.tmp_dir / f"ingest-{uuid.uuid4().hex}"
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _store_result(ctx: Ctx, result: IngestResult) -> tuple[str, str]:
    data = ctx.artifacts.adopt(result.parquet_path, result.parquet_sha256)
    profile = ctx.artifacts.put_stream(iter([orjson.dumps(result.profile)]))
    return data.digest, profile.digest


def _tags_of(s: Session, dataset_id: int) -> list[str]:
    return list(
        s.scalars(
            select(DatasetTag.tag)
            .where(DatasetTag.dataset_id == dataset_id)
            .order_by(DatasetTag.tag)
        )
    )


def _view(s: Session, ds: Dataset) -> DatasetView:
    project = s.get(Project, ds.project_id)
    assert project is not None
    org = s.scalar(select(Organization.name).where(Organization.id == project.org_id)) or ""
    return DatasetView(ds, project, org, _tags_of(s, ds.id))


def _version_row(
    ds: Dataset,
    version: int,
    result: IngestResult,
    digests: tuple[str, str],
    fmt: str,
    source_bytes: int,
    note: str,
    user_id: int | None,
    parent_id: int | None,
) -> DatasetVersion:
    return DatasetVersion(
        dataset_id=ds.id,
        version=version,
        parent_id=parent_id,
        digest=digests[0],
        profile_digest=digests[1],
        n_rows=result.n_rows,
        n_columns=len(result.columns),
        size_bytes=result.parquet_bytes,
        columns=[c.to_dict() for c in result.columns],
        source_format=fmt,
        source_bytes=source_bytes,
        note=note,
        created_by=user_id,
    )


def create(
    ctx: Ctx,
    project_id: int,
    name: str,
    upload: Src,
    fmt: str,
    *,
    card: Card = Card(),
    target: str | None = None,
    types: dict[str, str] | None = None,
    note: str = "",
) -> tuple[DatasetView, DatasetVersion]:
    """Ingest ``upload`` as version 1 of a new dataset in a project."""
    check_name(name)
    fmt = check_format(fmt)
    tags = check_tags(card.tags or [])
    with ctx.store.read() as s:
        authorize(ctx, s, project_id, Action.create, kind="project")
        _check_name_free(s, project_id, name)
    with _scratch(ctx) as tmp:
        result = ingest_file(
            upload,
            fmt,
            tmp / "data.parquet",
            overrides=types,
            target=target,
            limits=_limits(ctx),  # type: ignore[arg-type]
            sample_rows=ctx.settings.profile_sample_rows,
        )
        digests = _store_result(ctx, result)
    try:
        with ctx.store.write() as s:
            authorize(ctx, s, project_id, Action.create, kind="project")
            _check_name_free(s, project_id, name)
            ds = Dataset(
                project_id=project_id,
                name=name,
                description=card.description or "",
                source=card.source,
                licence=card.licence,
                citation=card.citation,
                created_by=ctx.principal.user_id,
                latest_version=1,
            )
            s.add(ds)
            s.flush()
            s.add_all(DatasetTag(dataset_id=ds.id, tag=t) for t in tags)
            row = _version_row(
                ds,
                1,
                result,
                digests,
                fmt,
                upload.stat().st_size,
                note,
                ctx.principal.user_id,
                None,
            )
            s.add(row)
            s.flush()
            audit.record(
                s,
                ctx.principal,
                "dataset.create",
                "dataset",
                ds.id,
                project_id=project_id,
                details={"name": name, "version": 1, "rows": result.n_rows},
            )
            view = _view(s, ds)
    except IntegrityError as e:
        raise Conflict(f"dataset {name!r} already exists in this project") from e
    return view, row


def _check_name_free(s: Session, project_id: int, name: str) -> None:
    taken = s.scalar(
        select(Dataset.id).where(Dataset.project_id == project_id, Dataset.name == name)
    )
    if taken is not None:
        raise Conflict(
            f"dataset {name!r} already exists in this project", details={"field": "name"}
        )


def _load(ctx: Ctx, s: Session, dataset_id: int, action: Action) -> Dataset:
    ds = s.get(Dataset, dataset_id)
    if ds is None:
        raise NotFound("dataset not found")
    authorize(ctx, s, ds.project_id, action, kind="dataset", owner_id=ds.created_by)
    return ds


def get(ctx: Ctx, dataset_id: int) -> DatasetView:
    with ctx.store.read() as s:
        return _view(s, _load(ctx, s, dataset_id, Action.read))


def list_datasets(
    ctx: Ctx,
    *,
    project_id: int | None = None,
    q: str | None = None,
    tags: list[str] | None = None,
    include_deprecated: bool = True,
    limit: int = 50,
    offset: int = 0,
) -> Page[DatasetView]:
    """Search datasets the caller can read, by name substring and tags (all must match)."""
    check_window(limit, offset)
    query = (
        select(Dataset)
        .join(Project, Project.id == Dataset.project_id)
        .where(readable_projects(ctx.principal))
    )
    if project_id is not None:
        query = query.where(Dataset.project_id == project_id)
    if q:
        query = query.where(Dataset.name.contains(q, autoescape=True))
    for tag in check_tags(tags or []):
        query = query.where(
            Dataset.id.in_(select(DatasetTag.dataset_id).where(DatasetTag.tag == tag))
        )
    if not include_deprecated:
        query = query.where(Dataset.deprecated_at.is_(None))
    with ctx.store.read() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = s.scalars(query.order_by(Dataset.id.desc()).limit(limit).offset(offset)).all()
        views = [_view(s, ds) for ds in rows]
    return page_of(views, total, limit, offset)


def update_card(ctx: Ctx, dataset_id: int, card: Card) -> DatasetView:
    with ctx.store.write() as s:
        ds = _load(ctx, s, dataset_id, Action.edit)
        changes: dict[str, Any] = {}
        for field in ("description", "source", "licence", "citation"):
            value = getattr(card, field)
            if value is not None:
                setattr(ds, field, value)
                changes[field] = value
        if card.tags is not None:
            tags = check_tags(card.tags)
            s.execute(DatasetTag.__table__.delete().where(DatasetTag.dataset_id == ds.id))
            s.add_all(DatasetTag(dataset_id=ds.id, tag=t) for t in tags)
            changes["tags"] = tags
        ds.updated_at = datetime.now(UTC)
        audit.record(
            s,
            ctx.principal,
            "dataset.update",
            "dataset",
            ds.id,
            project_id=ds.project_id,
            details=changes,
        )
        s.flush()
        return _view(s, ds)


def deprecate(ctx: Ctx, dataset_id: int, reason: str | None) -> DatasetView:
    """Mark a dataset as deprecated (still readable); ``reason=None`` lifts it."""
    with ctx.store.write() as s:
        ds = _load(ctx, s, dataset_id, Action.edit)
        if reason is not None and not reason.strip():
            raise InvalidInput("give a reason for deprecating", details={"field": "reason"})
        ds.deprecated_at = datetime.now(UTC) if reason is not None else None
        ds.deprecation_reason = reason
        audit.record(
            s,
            ctx.principal,
            "dataset.deprecate" if reason else "dataset.undeprecate",
            "dataset",
            ds.id,
            project_id=ds.project_id,
            details={"reason": reason},
        )
        return _view(s, ds)


def delete(ctx: Ctx, dataset_id: int) -> None:
    with ctx.store.write() as s:
        ds = _load(ctx, s, dataset_id, Action.edit)
        used = s.scalars(
            select(Task.name)
            .join(DatasetVersion, DatasetVersion.id == Task.dataset_version_id)
            .where(DatasetVersion.dataset_id == ds.id)
            .limit(5)
        ).all()
        if used:
            raise Conflict(
                f"dataset {ds.name!r} is used by tasks {', '.join(sorted(set(used)))}: "
                "delete them first",
                details={"tasks": sorted(set(used))},
            )
        audit.record(
            s,
            ctx.principal,
            "dataset.delete",
            "dataset",
            ds.id,
            project_id=ds.project_id,
            details={"name": ds.name},
        )
        s.delete(ds)


# Versions ---------------------------------------------------------------------------


def _version(s: Session, ds: Dataset, version: int | str) -> DatasetVersion:
    if version in ("latest", 0):
        version = ds.latest_version
    try:
        number = int(version)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"invalid version {version!r}: use a number or 'latest'", details={"field": "version"}
        ) from None
    row = None
    if 1 <= number <= MAX_ID:
        row = s.scalar(
            select(DatasetVersion).where(
                DatasetVersion.dataset_id == ds.id, DatasetVersion.version == number
            )
        )
    if row is None:
        raise NotFound(f"dataset {ds.name!r} has no version {number}")
    return row


def get_version(ctx: Ctx, dataset_id: int, version: int | str) -> tuple[Dataset, DatasetVersion]:
    with ctx.store.read() as s:
        ds = _load(ctx, s, dataset_id, Action.read)
        return ds, _version(s, ds, version)


def get_version_by_id(ctx: Ctx, version_id: int) -> tuple[Dataset, DatasetVersion]:
    with ctx.store.read() as s:
        row = s.get(DatasetVersion, version_id)
        if row is None:
            raise NotFound("dataset version not found")
        ds = _load(ctx, s, row.dataset_id, Action.read)
        return ds, row


def list_versions(ctx: Ctx, dataset_id: int) -> list[DatasetVersion]:
    with ctx.store.read() as s:
        ds = _load(ctx, s, dataset_id, Action.read)
        return list(
            s.scalars(
                select(DatasetVersion)
                .where(DatasetVersion.dataset_id == ds.id)
                .order_by(DatasetVersion.version)
            )
        )


def append(
    ctx: Ctx, dataset_id: int, upload: Src, fmt: str, *, note: str = "", target: str | None = None
) -> DatasetVersion:
    """Append rows: a new version made of the latest version's rows, then the new ones."""
    fmt = check_format(fmt)
    with ctx.store.read() as s:
        ds = _load(ctx, s, dataset_id, Action.create)
        base = _version(s, ds, "latest")
    with _scratch(ctx) as tmp:
        base_path = materialize(ctx, base.digest, tmp / "base.parquet")
        result = append_file(
            base_path,
            [ColumnSchema.from_dict(c) for c in base.columns],
            upload,
            fmt,  # type: ignore[arg-type]
            tmp / "data.parquet",
            target=target,
            limits=_limits(ctx),
            sample_rows=ctx.settings.profile_sample_rows,
        )
        digests = _store_result(ctx, result)
    with ctx.store.write() as s:
        ds = _load(ctx, s, dataset_id, Action.create)
        if ds.latest_version != base.version:
            raise Conflict(
                f"dataset {ds.name!r} got version {ds.latest_version} while appending: retry"
            )
        ds.latest_version = base.version + 1
        ds.updated_at = datetime.now(UTC)
        row = _version_row(
            ds,
            base.version + 1,
            result,
            digests,
            fmt,
            upload.stat().st_size,
            note,
            ctx.principal.user_id,
            base.id,
        )
        s.add(row)
        s.flush()
        audit.record(
            s,
            ctx.principal,
            "dataset.append",
            "dataset",
            ds.id,
            project_id=ds.project_id,
            details={"version": row.version, "rows": row.n_rows, "added": row.n_rows - base.n_rows},
        )
    return row


def materialize(ctx: Ctx, digest: str, dest: Path) -> Path:
    """A local file with a blob's content: the blob itself on local disk, else a copy."""
    local = ctx.artifacts.local_path(digest)
    if local is not None:
        return local
    with dest.open("wb") as f:
        for chunk in ctx.artifacts.iter_chunks(digest):
            f.write(chunk)
    return dest


def profile(ctx: Ctx, dataset_id: int, version: int | str) -> dict[str, Any]:
    _, row = get_version(ctx, dataset_id, version)
    with ctx.artifacts.open(row.profile_digest) as f:
        return orjson.loads(f.read())  # type: ignore[no-any-return]


def download(
    ctx: Ctx, dataset_id: int, version: int | str, fmt: str = "parquet"
) -> tuple[DatasetVersion, Iterator[bytes], str]:
    """Stream a version as Parquet (the stored blob) or CSV (converted batch by batch)."""
    if fmt not in ("parquet", "csv"):
        raise InvalidInput(
            f"unsupported download format {fmt!r}; use parquet or csv", details={"field": "format"}
        )
    _, row = get_version(ctx, dataset_id, version)
    if fmt == "parquet":
        return row, ctx.artifacts.iter_chunks(row.digest), "application/vnd.apache.parquet"
    return row, _csv_chunks(ctx, row.digest), "text/csv"


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
        if first:  # no rows: still send the header
            buf = io.BytesIO()
            pacsv.write_csv(pf.schema_arrow.empty_table(), buf)
            yield buf.getvalue()
