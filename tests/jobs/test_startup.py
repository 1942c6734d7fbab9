"""Workers keep the heavy imports loaded: a tiny job is not slowed by start-up."""

from __future__ import annotations

from pathlib import Path

from openmaas.config import Settings
from openmaas.domain.context import Platform
from openmaas.domain.jobs import SUCCEEDED
from openmaas.testing.jobs import add_job, job, wait_for
from tests.jobs.conftest import FAST, WorkerProcesses


def test_a_job_importing_torch_lightgbm_and_sklearn_starts_at_once(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", **FAST)
    platform = Platform(settings)
    platform.prepare()
    workers = WorkerProcesses(settings, tmp_path)
    try:
        workers.start("heavy", preload=None)  # the default preload: numpy ... torch
        job_id = add_job(platform, "test.imports")
        wait_for(lambda: job(platform, job_id).state == SUCCEEDED, timeout=60)
        row = job(platform, job_id)
        assert row.result is not None and row.started_at is not None
        started_in = row.result["t"] - row.started_at.timestamp()
        import_ms = row.result["import_s"] * 1000
        print(
            f"\nclaimed -> handler running: {started_in * 1000:.0f} ms; "
            f"importing torch, lightgbm, sklearn.ensemble took {import_ms:.2f} ms"
        )
        assert row.result["import_s"] < 0.05  # already imported by the forkserver
        assert started_in < 1.0
        assert row.result["torch_threads"] == 1
    finally:
        workers.cleanup()
        platform.store.dispose()
