"""Settings come from OPENMAAS_* variables and an optional TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from openmaas.config import Settings


def test_defaults_put_everything_in_home(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    assert s.resolved_database_url == f"sqlite:///{tmp_path.resolve() / 'openmaas.db'}"
    assert s.resolved_artifact_url == str(tmp_path.resolve() / "artifacts")
    assert s.max_field_bytes == 1 << 20


def test_environment_and_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "openmaas.toml"
    cfg.write_text('artifact_url = "s3://bucket/prefix"\nmax_upload_bytes = 1000\n')
    monkeypatch.setenv("OPENMAAS_CONFIG", str(cfg))
    monkeypatch.setenv("OPENMAAS_MAX_UPLOAD_BYTES", "2000")
    monkeypatch.setenv("OPENMAAS_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    s = Settings()
    assert s.resolved_artifact_url == "s3://bucket/prefix"
    assert s.max_upload_bytes == 2000  # the environment wins over the file
    assert s.storage_options() == {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}


def test_limits_must_be_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENMAAS_MAX_FIELD_BYTES", "0")
    with pytest.raises(ValidationError, match="must be positive"):
        Settings()
