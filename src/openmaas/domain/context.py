"""The platform (stores and settings, built once) and a caller's view of it."""

from __future__ import annotations

import shutil
import time
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
        """Create folders, bring the database schema up to date, drop stale scratch files.

        Scratch files of a crashed process are never visible as data; those older
        than an hour are removed here (younger ones may belong to a live process).
        """
        self.settings.home.mkdir(parents=True, exist_ok=True)
        tmp = self.settings.tmp_dir
        tmp.mkdir(parents=True, exist_ok=True)
        self.store.upgrade()
        cutoff = time.time() - 3600
        for leftover in tmp.iterdir():
            if leftover.stat().st_mtime < cutoff:
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)

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
