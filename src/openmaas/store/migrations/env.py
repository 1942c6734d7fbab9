"""Alembic environment: runs migrations on the store's own engine.

On PostgreSQL an advisory lock makes concurrent ``upgrade`` calls (server and
workers starting together) run one after the other; on SQLite the store's
``BEGIN IMMEDIATE`` write transactions do the same.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from openmaas.store.metadata.tables import Base

config = context.config
target_metadata = Base.metadata
_MIGRATION_LOCK = 7_305_202_611


def run_migrations_online() -> None:
    store = config.attributes["store"]
    with store.engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=store.dialect == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            if store.dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            context.run_migrations()


run_migrations_online()
