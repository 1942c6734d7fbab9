"""The SQL metadata store: engines, transactions and migrations.

Several processes (the API server, workers, CLI commands) write to the same
database at once. On PostgreSQL row locks and ``SKIP LOCKED`` keep them apart.
On SQLite we run in WAL mode with a busy timeout and open every *write*
transaction with ``BEGIN IMMEDIATE``: the write lock is taken up front, so a
transaction never fails half-way on lock upgrade and concurrent writers simply
queue. Reads use plain deferred transactions and never block writers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from openmaas.errors import InvalidInput, StoreError


def _sqlite_engine(url: str, *, busy_timeout_s: float, write: bool) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
        pool_pre_ping=False,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us emit BEGIN ourselves (pysqlite's own handling defers it badly).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


class MetadataStore:
    """Owns the engines and hands out transactions.

    ``read()`` and ``write()`` are context managers yielding a ``Session`` that
    commits on success and rolls back on any exception. Objects stay usable
    after the block (``expire_on_commit=False``) for building responses.
    """

    def __init__(self, url: str, *, busy_timeout_s: float = 30.0, pool_size: int = 10) -> None:
        try:
            self.url = make_url(url)
        except SQLAlchemyError as e:
            raise InvalidInput(f"invalid database URL: {e}") from e
        self.dialect = self.url.get_backend_name()
        if self.dialect == "sqlite":
            self._read_engine = _sqlite_engine(url, busy_timeout_s=busy_timeout_s, write=False)
            self._write_engine = _sqlite_engine(url, busy_timeout_s=busy_timeout_s, write=True)
        elif self.dialect == "postgresql":
            if self.url.drivername == "postgresql":
                self.url = self.url.set(drivername="postgresql+psycopg")
            engine = create_engine(
                self.url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True
            )
            self._read_engine = self._write_engine = engine
        else:
            raise InvalidInput(
                f"unsupported database {self.dialect!r}: use sqlite:/// or postgresql+psycopg://"
            )
        self._read = sessionmaker(self._read_engine, expire_on_commit=False)
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)

    @property
    def engine(self) -> Engine:
        return self._write_engine

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self._write() as session, session.begin():
            yield session

    def upgrade(self, revision: str = "head") -> None:
        """Apply Alembic migrations; safe to call from several processes at once."""
        from alembic import command

        try:
            command.upgrade(self.alembic_config(), revision)
        except SQLAlchemyError as e:
            raise StoreError(f"database migration failed: {e}") from e

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self._read_engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def alembic_config(self) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option(
            "script_location", str(resources.files("openmaas.store") / "migrations")
        )
        cfg.attributes["store"] = self
        return cfg

    def dispose(self) -> None:
        self._read_engine.dispose()
        self._write_engine.dispose()
