"""Shared fixtures: a platform on SQLite (always) or PostgreSQL (when configured).

PostgreSQL runs when ``OPENMAAS_TEST_DATABASE_URL`` names a database the tests
may wipe (``.ci/run`` sets it); each test starts from an empty schema.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from starlette.testclient import TestClient

from openmaas.client import Client
from openmaas.config import Settings
from openmaas.domain.context import Ctx, Platform
from openmaas.domain.identity import bootstrap_admin, principal_for_user
from tests.s3 import S3Server, s3_server

PG_URL = os.environ.get("OPENMAAS_TEST_DATABASE_URL")
__all__ = ["S3Server", "s3_server"]


@functools.cache
def _worker_database(url: str) -> str:
    """Under pytest-xdist each worker gets its own database next to the configured one,
    made on first use, so that workers never wipe each other's schema."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    base = make_url(url)
    name = f"{base.database}_{worker}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def _wipe_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'openmaas.db'}"
    if not PG_URL:
        pytest.skip("set OPENMAAS_TEST_DATABASE_URL to run PostgreSQL tests")
    url = _worker_database(PG_URL)
    _wipe_postgres(url)
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # Cheap password hashing: tests hash many passwords; production keeps the defaults.
    return Settings(
        home=tmp_path / "home", database_url=database_url, argon2_time_cost=1, argon2_memory_kib=64
    )


@pytest.fixture
def platform(settings: Settings) -> Iterator[Platform]:
    p = Platform(settings)
    p.prepare()
    yield p
    p.store.dispose()


@pytest.fixture
def admin_ctx(platform: Platform) -> Ctx:
    boot = bootstrap_admin(platform)
    return platform.as_(principal_for_user(platform, boot.user.id))


@pytest.fixture
def app(platform: Platform):  # type: ignore[no-untyped-def]
    from openmaas.api.app import create_app

    return create_app(platform, prepare=False)


@pytest.fixture
def http(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def admin_token(platform: Platform) -> str:
    boot = bootstrap_admin(platform, password="admin-password")
    assert boot.token is not None
    return boot.token


def sdk(http: TestClient, token: str | None) -> Client:
    """An SDK client talking to the in-process app."""
    return Client("http://testserver", token, http=http)


@pytest.fixture
def admin(http: TestClient, admin_token: str) -> Client:
    return sdk(http, admin_token)
