"""The Alembic migrations and the SQLAlchemy models describe the same schema."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from openmaas.store.metadata.sql import MetadataStore
from openmaas.store.metadata.tables import Base


def test_models_match_migrations(database_url: str) -> None:
    store = MetadataStore(database_url)
    store.upgrade()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    store.dispose()
    assert diff == [], (
        "the models in store/metadata/tables.py and the migrations differ; write a new "
        "migration with `alembic revision --autogenerate` (see store/migrations): "
        f"{diff}"
    )


def test_upgrade_is_idempotent(database_url: str) -> None:
    store = MetadataStore(database_url)
    store.upgrade()
    first = store.current_revision()
    store.upgrade()
    assert store.current_revision() == first is not None
    store.dispose()


def test_unsupported_database_is_a_clear_error() -> None:
    from openmaas.errors import InvalidInput

    with pytest.raises(InvalidInput, match="unsupported database 'mysql'"):
        MetadataStore("mysql://localhost/x")
