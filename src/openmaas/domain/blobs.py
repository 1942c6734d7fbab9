"""Garbage collection of blobs no metadata row refers to any more."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from openmaas.domain import scoring
from openmaas.domain.context import Platform
from openmaas.store.artifacts.gc import collect_garbage
from openmaas.store.metadata.tables import BLOB_COLUMNS


def referenced_digests(platform: Platform) -> set[str]:
    out: set[str] = set()
    with platform.store.read() as s:
        for column in BLOB_COLUMNS:
            out.update(d for d in s.scalars(select(column).distinct()) if d)
        out |= scoring.referenced_digests(s)  # kept in the jobs' JSON, not in a column
    return out


def gc(
    platform: Platform, *, grace: timedelta = timedelta(hours=1), dry_run: bool = False
) -> list[str]:
    """Delete unreferenced blobs older than ``grace`` (younger ones may be mid-upload)."""
    platform.artifacts.cleanup_temp()
    return collect_garbage(
        platform.artifacts, referenced_digests(platform), grace=grace, dry_run=dry_run
    )
