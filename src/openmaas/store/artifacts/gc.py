"""Garbage collection: delete blobs the metadata database no longer references.

Puts and the rows recording them are not one transaction: a blob is stored
first and referenced a moment later. The grace period covers that gap; a
blob younger than ``grace`` is kept even if nothing references it yet (a
re-put refreshes its age, so the same holds for content stored before).
"""

from __future__ import annotations

import logging
from collections.abc import Set
from datetime import UTC, datetime, timedelta

from openmaas.store.artifacts.base import ArtifactStore, check_age

logger = logging.getLogger(__name__)


def collect_garbage(
    store: ArtifactStore,
    referenced: Set[str],
    *,
    grace: timedelta = timedelta(hours=1),
    dry_run: bool = False,
) -> list[str]:
    """Delete unreferenced blobs last modified at least ``grace`` ago; return their digests.

    Read ``referenced`` from the database *before* calling, and record every
    put within ``grace`` of it. With ``dry_run`` nothing is deleted and the
    digests that would be are returned. The result is sorted.
    """
    cutoff = datetime.now(UTC) - check_age(grace, "grace")
    # List first, delete after: some backends list lazily from the same folders.
    doomed = sorted(
        digest
        for digest, modified in store.iter_blobs()
        if digest not in referenced and modified <= cutoff
    )
    if not dry_run:
        for digest in doomed:
            store.delete(digest)
    logger.info(
        "artifact gc on %r: %s %d unreferenced blob(s)",
        store,
        "would delete" if dry_run else "deleted",
        len(doomed),
    )
    return doomed
