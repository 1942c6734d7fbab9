"""Fixtures for job tests: fast settings, a test executor, in-process and real workers.

On PostgreSQL the schema is migrated once and emptied with DELETE between
tests, where the shared fixture drops and migrates it (~0.7 s a test).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from openmaas.config import Settings
from openmaas.domain.context import Platform
from openmaas.jobs.executors.local import LocalExecutor
from openmaas.jobs.worker import Worker
from openmaas.store.metadata.sql import MetadataStore
from openmaas.store.metadata.tables import Base
from openmaas.testing.jobs import KINDS, TEST_PRELOAD, pid_alive, wait_for
from tests.conftest import _worker_database

FAST: dict[str, Any] = {"job_retry_backoff_s": 0.1, "job_retry_backoff_max_s": 1.0}
LEASE_S, HEARTBEAT_S, POLL_S = 1.5, 0.25, 0.1
PG_URL = os.environ.get("OPENMAAS_TEST_DATABASE_URL")


def _empty_postgres(url: str) -> None:
    store = MetadataStore(url)
    head = ScriptDirectory.from_config(store.alembic_config()).get_current_head()
    store.dispose()
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            if "alembic_version" in inspect(conn).get_table_names():
                current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
                if current == head:
                    for table in reversed(Base.metadata.sorted_tables):
                        conn.execute(table.delete())
                    return
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'openmaas.db'}"
    if not PG_URL:
        pytest.skip("set OPENMAAS_TEST_DATABASE_URL to run PostgreSQL tests")
    url = _worker_database(PG_URL)
    _empty_postgres(url)
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database_url, **FAST)


@pytest.fixture
def executor(platform: Platform) -> LocalExecutor:
    return LocalExecutor(platform.settings, preload=TEST_PRELOAD, memory_check_s=0.05)


@pytest.fixture
def make_worker(platform: Platform, executor: LocalExecutor) -> Callable[..., Worker]:
    def make(**kw: Any) -> Worker:
        kw.setdefault("worker_id", "w-test")
        kw.setdefault("kinds", list(KINDS))
        kw.setdefault("lease_s", LEASE_S)
        kw.setdefault("heartbeat_s", HEARTBEAT_S)
        kw.setdefault("poll_interval", POLL_S)
        kw.setdefault("memory_limit_mb", 1000)
        return Worker(platform, executor=executor, **kw)

    return make


def session_pids(sid: int) -> list[int]:
    """Live processes of session ``sid`` (a worker started as a session leader)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    fields = f.read().rpartition(b")")[2].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != b"Z":
                out.append(int(name))
    return out


class WorkerProcesses:
    """Real worker processes (``python -m openmaas.jobs.worker_main``), each its own session."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OPENMAAS_")}
        self.env.update(
            OPENMAAS_HOME=str(settings.home),
            OPENMAAS_DATABASE_URL=settings.resolved_database_url,
            **{f"OPENMAAS_{k.upper()}": str(v) for k, v in FAST.items()},
        )
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, worker_id: str, *args: str, preload: list[str] | None = TEST_PRELOAD
    ) -> subprocess.Popen[bytes]:
        """Start a worker; ``preload=None`` keeps the default (heavy) forkserver preload."""
        if preload is not None:
            args = ("--preload", ",".join(preload), *args)
        cmd = [
            sys.executable,
            "-m",
            "openmaas.jobs.worker_main",
            "--worker-id",
            worker_id,
            "--module",
            "openmaas.testing.jobs",
            "--no-builtin-kinds",
            "--lease-s",
            str(LEASE_S),
            "--heartbeat-s",
            str(HEARTBEAT_S),
            "--poll-interval",
            str(POLL_S),
            "--memory-limit-mb",
            "1000",
            *args,
        ]
        with (self.logs / f"{worker_id}.log").open("ab") as log:
            proc = subprocess.Popen(
                cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs.append(proc)
        return proc

    def signal_all(self, proc: subprocess.Popen[bytes], sig: int) -> None:
        """Send ``sig`` to the worker and everything it started (its forkserver, attempts)."""
        for pid in session_pids(proc.pid):
            os.kill(pid, sig)

    def cleanup(self) -> None:
        for proc in self.procs:
            for pid in session_pids(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.wait(10)
        for proc in self.procs:
            wait_for(lambda p=proc: not session_pids(p.pid), timeout=10)


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcesses]:
    procs = WorkerProcesses(settings, tmp_path)
    yield procs
    procs.cleanup()


__all__ = ["WorkerProcesses", "pid_alive", "session_pids"]
