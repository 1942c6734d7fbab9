"""Batch scoring targets in a test world: rows the world's model reads, and scoring jobs.

The world's models read three numeric columns ``a``, ``b``, ``c``
(:func:`~openmaas.testing.world.tiny_lightgbm`); its ``people`` datasets do
not have them, so scoring calls use a dataset made from :data:`ROWS_CSV`.
"""

from __future__ import annotations

from typing import Any

from openmaas.testing.world import Space, World, WorldError

ROWS_CSV = "a,b,c,id\n" + "".join(
    f"{(i % 7) / 3 - 1:.3f},{(i % 5) / 2 - 1:.3f},{(i % 3) - 1},{i}\n" for i in range(40)
)

_DATASETS: dict[tuple[int, int], int] = {}
_JOBS: dict[tuple[int, int], int] = {}


def scoring_dataset(world: World, space: Space) -> int:
    """A dataset with the model's columns in the space's project (made once per world)."""
    key = (id(world), space.project_id)
    if key not in _DATASETS:
        params = {"name": world.unique("rows"), "format": "csv"}
        path = f"/projects/{space.project_id}/datasets"
        data = world.ok("owner", "POST", path, params=params, content=ROWS_CSV.encode())
        _DATASETS[key] = int(data["dataset"]["id"])
    return _DATASETS[key]


def scoring_body(world: World, space: Space) -> dict[str, Any]:
    return {"dataset_id": scoring_dataset(world, space), "version": "latest"}


def new_score_job(world: World, space: Space) -> int:
    """A queued scoring job of the space's model on uploaded rows, made by ``owner``."""
    path = f"/models/{space.model_id}/versions/1/score/upload"
    params = {"format": "csv", "filename": "rows.csv"}
    return int(world.ok("owner", "POST", path, params=params, content=ROWS_CSV.encode())["id"])


def finished_score_job(world: World, space: Space) -> int:
    """A succeeded scoring job (made once per world and space; a worker runs it here)."""
    key = (id(world), space.project_id)
    if key not in _JOBS:
        job_id = new_score_job(world, space)
        run_score_jobs(world)
        state = world.ok("owner", "GET", f"/scoring/{job_id}")["state"]
        if state != "succeeded":
            raise WorldError(f"scoring job {job_id} ended {state}")
        _JOBS[key] = job_id
    return _JOBS[key]


def run_score_jobs(world: World) -> None:
    """Run the queued scoring jobs of the world's in-process app."""
    import openmaas.jobs.handlers.score  # noqa: F401  (registers the "score" job kind)
    from openmaas.jobs.worker import Worker

    app = getattr(world.http, "app", None)
    if app is None:
        raise WorldError("the world's client does not hold the app: cannot run a worker")
    platform = app.state.platform
    Worker(platform, kinds=["score"], concurrency=1, poll_interval=0.05).run_until_idle(timeout=120)
