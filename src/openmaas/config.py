"""Typed settings: every ``OPENMAAS_*`` environment variable, in one place.

Values come, highest priority first, from keyword arguments, the environment
(``OPENMAAS_DATABASE_URL`` …), a TOML file named by ``OPENMAAS_CONFIG`` and the
defaults below. Nothing else in the package reads ``os.environ``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

MiB = 1 << 20
GiB = 1 << 30


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPENMAAS_", extra="ignore")

    home: Path = Field(
        default=Path("./data"),
        description="Folder for the default SQLite database, artifacts and temporary files.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: a SQLite file in `home`. "
        "PostgreSQL: postgresql+psycopg://user:pw@host/db",
    )
    artifact_url: str | None = Field(
        default=None,
        description="Artifact store root: a local folder (default `home`/artifacts) "
        "or s3://bucket/prefix.",
    )
    s3_endpoint_url: str | None = Field(default=None, description="S3 API endpoint (MinIO, moto).")
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_region: str | None = None

    host: str = "127.0.0.1"
    port: int = 8000
    url: str = Field(default="http://127.0.0.1:8000", description="Server URL used by the CLI.")
    token: str | None = Field(default=None, description="API token used by the CLI and SDK.")

    max_upload_bytes: int = Field(default=4 * GiB, description="Largest accepted upload.")
    max_field_bytes: int = Field(default=MiB, description="Largest accepted CSV/JSON field.")
    max_rows: int = Field(default=200_000_000, description="Most rows in one dataset version.")
    max_columns: int = Field(default=10_000, description="Most columns in one dataset.")
    profile_sample_rows: int = Field(
        default=10_000, description="Rows kept as a random sample in each profile."
    )
    argon2_time_cost: int = Field(default=3, ge=1, description="argon2id passes per hash.")
    argon2_memory_kib: int = Field(
        default=65536, ge=8, description="argon2id memory per password hash, in KiB."
    )
    token_default_days: int = Field(default=90, description="Default API token lifetime.")
    sqlite_busy_timeout_s: float = 30.0
    trust_proxy_headers: bool = Field(
        default=False, description="Take the client address from X-Forwarded-For."
    )
    admin_password: str | None = Field(
        default=None,
        description="Password of the first admin, made on first start (random if unset).",
    )

    # Models and endpoints ----------------------------------------------------------
    allow_pickle_models: bool = Field(
        default=False,
        description="Accept pickle model uploads (from maintainers only). Loading a pickle "
        "runs code from the file: enable only if every maintainer is trusted.",
    )
    serving_max_rows: int = Field(default=100_000, description="Most rows in one predict call.")
    serving_max_body_bytes: int = Field(
        default=64 * MiB, description="Largest predict request body."
    )
    serving_sync_s: float = Field(
        default=1.0, description="How often replicas sync counters and reload deployments."
    )
    serving_token_ttl_s: float = Field(
        default=2.0, description="How long a replica trusts a cached token before re-checking."
    )
    serving_accelerate: bool = Field(
        default=True,
        description="Serve LightGBM versions and numeric LightGBM or linear pipelines on ONNX "
        "Runtime (the onnx extra) where it gives the model's own answers (checked at "
        "load); off: always the model's own predict.",
    )

    # Jobs ------------------------------------------------------------------------
    worker_concurrency: int = Field(default=1, description="Jobs one worker runs at once.")
    worker_memory_mb: int | None = Field(
        default=None,
        description="Per-job memory limit in MB (memory private to the job's processes); "
        "a job over it fails cleanly. 0: no limit. Default: 80% of the machine's memory "
        "/ concurrency.",
    )
    worker_threads: int = Field(
        default=1, description="CPU threads per job (OpenMP, BLAS, torch, LightGBM)."
    )
    worker_lease_s: float = Field(
        default=30.0, description="A job whose worker sent no heartbeat this long is re-queued."
    )
    worker_heartbeat_s: float = Field(
        default=5.0, description="Seconds between heartbeats; at most half the lease."
    )
    worker_poll_s: float = Field(
        default=0.2,
        description="Seconds between looking for new jobs when idle (a read that takes no "
        "write lock: cheap, and a job waits on average half of it to start).",
    )
    worker_preload: list[str] = Field(
        default=[
            "numpy",
            "pandas",
            "pyarrow",
            "pyarrow.parquet",
            "sklearn",
            "lightgbm",
            "torch",
            "threadpoolctl",
            "openmaas.ml.catalog",
            "openmaas.jobs.runner",
            # imported by a job's first model save (skops.io pulls in every scikit-learn
            # estimator) and first torch optimiser step (torch._dynamo, sympy): ~1.5 s
            "skops.io",
            "torch._dynamo",
        ],
        description="Modules the worker's forkserver imports once, so jobs start fast.",
    )
    worker_executor: Literal["local", "ray"] = Field(
        default="local",
        description="Where a worker runs its jobs: local processes (forks of a warm "
        "forkserver), or Ray tasks on a cluster (the `ray` extra) that run them the same "
        "way on the node Ray picks.",
    )
    ray_address: str = Field(
        default="",
        description="The Ray cluster of the ray executor (`auto`, `ray://host:10001`); "
        "empty: a Ray instance private to the worker.",
    )
    job_checkpoint_interval_s: float = Field(
        default=5.0,
        ge=0.0,
        description="Fewest seconds between two checkpoints of a running fit (torch "
        "checkpoints after an epoch, LightGBM every checkpoint_every rounds, but not more "
        "often): a crash loses at most about this much training.",
    )
    job_retry_backoff_s: float = Field(
        default=10.0, description="Delay before the first retry of a failed job; doubles each time."
    )
    job_retry_backoff_max_s: float = Field(default=600.0, description="Longest retry delay.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("OPENMAAS_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @field_validator(
        "max_upload_bytes",
        "max_field_bytes",
        "max_rows",
        "max_columns",
        "worker_concurrency",
        "worker_threads",
        "worker_lease_s",
        "worker_heartbeat_s",
        "worker_poll_s",
    )
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("must be positive")
        return v

    # Derived locations -----------------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'openmaas.db').resolve()}"

    @property
    def resolved_artifact_url(self) -> str:
        if self.artifact_url:
            return self.artifact_url
        return str((self.home / "artifacts").resolve())

    @property
    def tmp_dir(self) -> Path:
        """Scratch space for uploads being received; emptied on start."""
        return (self.home / "tmp").resolve()

    def storage_options(self) -> dict[str, Any]:
        """fsspec options for an ``s3://`` artifact store."""
        opts: dict[str, Any] = {}
        client_kwargs: dict[str, Any] = {}
        if self.s3_endpoint_url:
            client_kwargs["endpoint_url"] = self.s3_endpoint_url
        if self.s3_region:
            client_kwargs["region_name"] = self.s3_region
        if client_kwargs:
            opts["client_kwargs"] = client_kwargs
        if self.s3_access_key_id:
            opts["key"] = self.s3_access_key_id
        if self.s3_secret_access_key:
            opts["secret"] = self.s3_secret_access_key
        return opts


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
