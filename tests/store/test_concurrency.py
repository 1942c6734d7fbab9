"""Several processes writing at once never lose or corrupt a write."""

from __future__ import annotations

import multiprocessing as mp

from sqlalchemy import func, select

from openmaas.store.metadata.sql import MetadataStore
from openmaas.store.metadata.tables import AuditEvent, Organization

WRITERS = 4
WRITES = 40


def _writer(url: str, worker: int) -> None:
    store = MetadataStore(url, busy_timeout_s=60)
    for i in range(WRITES):
        with store.write() as s:
            # A read-modify-write on one shared row: lost updates would show here.
            org = s.scalar(
                select(Organization).where(Organization.name == "counter").with_for_update()
            )
            assert org is not None
            org.description = str(int(org.description) + 1)
            s.add(AuditEvent(action="test", resource_type="t", resource_id=f"{worker}-{i}"))
    store.dispose()


def test_concurrent_writers_lose_nothing(database_url: str) -> None:
    store = MetadataStore(database_url)
    store.upgrade()
    with store.write() as s:
        s.add(Organization(name="counter", description="0"))
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(database_url, w)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with store.read() as s:
        counter = s.scalar(select(Organization.description).where(Organization.name == "counter"))
        events = s.scalar(select(func.count()).select_from(AuditEvent))
        distinct = s.scalar(select(func.count(func.distinct(AuditEvent.resource_id))))
    store.dispose()
    assert counter == str(WRITERS * WRITES)
    assert events == distinct == WRITERS * WRITES
