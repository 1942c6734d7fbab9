"""One world per database for the whole module: building it costs seconds, a case milliseconds.

The cases change the world only in ways the others do not depend on (each
destructive call gets a fresh target), so they share it; the PostgreSQL schema
is wiped once, before the world is built.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from openmaas.config import Settings
from openmaas.testing.world import World, running_world
from tests.conftest import PG_URL, _wipe_postgres, _worker_database


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    home = tmp_path_factory.mktemp("authz")
    if request.param == "sqlite":
        url = f"sqlite:///{home / 'openmaas.db'}"
    else:
        if not PG_URL:
            pytest.skip("set OPENMAAS_TEST_DATABASE_URL to run PostgreSQL tests")
        url = _worker_database(PG_URL)
        _wipe_postgres(url)
    with running_world(Settings(home=home / "home", database_url=url)) as (_, w):
        yield w
