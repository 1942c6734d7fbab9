"""The platform (stores and settings, built once) and a caller's view of it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

from openmaas.config import Settings
from openmaas.domain.principal import ANONYMOUS, Principal
from openmaas.store.artifacts import ArtifactStore, open_artifact_store
from openmaas.store.metadata.sql import MetadataStore


class Platform:
    """Everything the domain services need that outlives a request."""

    def __init__(
        self,
        settings: Settings,
        store: MetadataStore | None = None,
        artifacts: ArtifactStore | None = None,
    ) -> None:
        self.settings = settings
        self.store = store or MetadataStore(
            settings.resolved_database_url, busy_timeout_s=settings.sqlite_busy_timeout_s
        )
        self._artifacts = artifacts

    @cached_property
    def artifacts(self) -> ArtifactStore:
        if self._artifacts is not None:
            return self._artifacts
        return open_artifact_store(
            self.settings.resolved_artifact_url, self.settings.storage_options()
        )

    def prepare(self) -> None:
        """Create folders and bring the database schema up to date."""
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.store.upgrade()

    def as_(self, principal: Principal = ANONYMOUS) -> Ctx:
        return Ctx(self, principal)


@dataclass(frozen=True)
class Ctx:
    """A caller acting on the platform: what every domain service takes first."""

    platform: Platform
    principal: Principal

    @property
    def store(self) -> MetadataStore:
        return self.platform.store

    @property
    def artifacts(self) -> ArtifactStore:
        return self.platform.artifacts

    @property
    def settings(self) -> Settings:
        return self.platform.settings

    def with_principal(self, principal: Principal) -> Ctx:
        return replace(self, principal=principal)
