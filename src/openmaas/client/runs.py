"""SDK resources for training: the algorithm catalog, runs, and task leaderboards.

    run = client.runs.create(task_id, "lightgbm", {"n_estimators": 200}).wait()
    print(run.score, run.score_std)
    frame = run.predictions()
    board = client.runs.leaderboard(task_id, algorithm="lightgbm")

``Run.wait()`` raises :class:`RunFailed` (carrying the server's error message)
when the run fails or is cancelled; pass ``raise_on_failure=False`` to get the
ended run back and check ``run.state`` yourself.
"""

from __future__ import annotations

import builtins
import io
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openmaas.client import tracking
from openmaas.client._http import Http, Progress, q
from openmaas.client._poll import poll_until_done
from openmaas.client.models import Algorithm, Leaderboard, Page, Record, Run
from openmaas.client.models import record_id as _id
from openmaas.client.resources import Datasets, Projects, TaskRef, Tasks
from openmaas.client.tracking import ActiveRun
from openmaas.errors import OpenMaaSError

if TYPE_CHECKING:
    import pandas as pd

    from openmaas.client.resources import ProjectRef

RunRef = int | Run
PREDICTIONS = "predictions.parquet"
LOG_PAGE = 1000


class RunFailed(OpenMaaSError):
    """A run that was waited for ended ``failed`` or ``cancelled``.

    ``run`` is the ended run; ``message`` holds the server's error.
    """

    code = "run_failed"

    def __init__(self, run: Run) -> None:
        self.run = run
        if run.state == "cancelled":
            message = f"run {run.id} was cancelled"
        else:
            message = f"run {run.id} ({run.algorithm}) failed: {run.error or 'no error recorded'}"
        super().__init__(message, details={"run_id": run.id, "state": run.state})


def artifact_path(run_id: int, name: str) -> str:
    """The URL path of an artifact; ``name`` may hold folders (``models/final/model.txt``)."""
    return f"/runs/{run_id}/artifacts/" + "/".join(q(part) for part in name.split("/"))


class Algorithms:
    """The catalog of trainable algorithms (public: the same for everyone)."""

    def __init__(self, http: Http) -> None:
        self._http = http

    def list(self, task_type: str | None = None) -> list[Algorithm]:
        """Every algorithm, or those that support ``task_type`` (``binary``, ``regression`` ...)."""
        return [Algorithm(x) for x in self._http.get("/algorithms", task_type=task_type)]

    def get(self, name: str) -> Algorithm:
        return Algorithm(self._http.get(f"/algorithms/{q(name)}"))


class Runs:
    """Training runs on tasks, their logs, metrics and files, and task leaderboards."""

    def __init__(
        self, http: Http, projects: Projects | None = None, tasks: Tasks | None = None
    ) -> None:
        self._http = http
        self._projects = projects or Projects(http)
        self._tasks = tasks or Tasks(http, self._projects, Datasets(http, self._projects))

    def task_id(self, task: TaskRef) -> int:
        """``task``'s id (names resolved as :meth:`Tasks.resolve` does)."""
        return self._tasks.resolve(task)

    def _run(self, data: dict[str, Any]) -> Run:
        return Run(data, self)

    # Queue and inspect -----------------------------------------------------------------

    def create(
        self,
        task: TaskRef,
        algorithm: str,
        params: dict[str, Any] | None = None,
        *,
        seed: int = 0,
        name: str = "",
        parent: RunRef | None = None,
        memory_limit_mb: int | None = None,
        divergence_retries: int = 0,
    ) -> Run:
        """Queue a run of ``algorithm`` on a task; returns at once, the run ``queued``.

        ``params`` are checked against the algorithm's hyperparameters before
        anything is queued. ``parent``: a succeeded run of the same algorithm to
        warm-start from. ``memory_limit_mb``: the run's own memory limit (a run
        over it fails cleanly). ``divergence_retries``: when training diverges,
        retry with the learning rate divided by 10, up to this many times (the
        run's params then show the learning rate that ran).
        """
        body = {
            "algorithm": algorithm,
            "params": params or {},
            "seed": seed,
            "name": name,
            "parent_run_id": None if parent is None else _id(parent),
            "memory_limit_mb": memory_limit_mb,
            "divergence_retries": divergence_retries,
        }
        return self._run(self._http.post(f"/tasks/{self.task_id(task)}/runs", json=body))

    def get(self, run: RunRef) -> Run:
        return self._run(self._http.get(f"/runs/{_id(run)}"))

    def list(
        self,
        *,
        task: TaskRef | None = None,
        project: ProjectRef | None = None,
        algorithm: str | None = None,
        state: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Run]:
        """Runs you can read, newest first."""
        data = self._http.get(
            "/runs",
            task_id=None if task is None else self.task_id(task),
            project_id=None if project is None else self._projects.resolve(project),
            algorithm=algorithm,
            state=state,
            limit=limit,
            offset=offset,
        )
        items = [self._run(x) for x in data["items"]]
        return Page(items, data["total"], data["limit"], data["offset"])

    def wait(
        self,
        run: RunRef,
        timeout: float | None = None,
        poll: float = 0.5,
        on_progress: Callable[[Run], None] | None = None,
        *,
        raise_on_failure: bool = True,
    ) -> Run:
        """Poll the run every ``poll`` seconds until it ends; return it ended.

        ``on_progress(run)`` sees every polled state (``run.state``,
        ``run.progress``). Raises :class:`RunFailed` if it failed or was
        cancelled (unless ``raise_on_failure`` is false) and ``TimeoutError``
        if it is still going after ``timeout`` seconds.
        """
        current = poll_until_done(
            lambda: self.get(run), f"run {_id(run)}", timeout, poll, on_progress
        )
        if raise_on_failure and current.state != "succeeded":
            raise RunFailed(current)
        return current

    def cancel(self, run: RunRef) -> Run:
        """Stop a queued or running run (its creator, or a maintainer)."""
        return self._run(self._http.post(f"/runs/{_id(run)}/cancel"))

    def delete(self, run: RunRef) -> None:
        self._http.delete(f"/runs/{_id(run)}")

    # Logs and metrics ------------------------------------------------------------------

    def logs(self, run: RunRef, after_id: int = 0, limit: int = LOG_PAGE) -> builtins.list[Record]:
        """Log lines (``id``, ``attempt``, ``at``, ``level``, ``message``) after ``after_id``."""
        lines = self._http.get(f"/runs/{_id(run)}/logs", after_id=after_id, limit=limit)
        return [Record(x) for x in lines]

    def iter_logs(
        self, run: RunRef, *, follow: bool = False, poll: float = 1.0
    ) -> Iterator[Record]:
        """Every log line, page by page; with ``follow``, new ones too until the run ends."""
        after = 0
        while True:
            ended = not follow or self.get(run).done  # read before the logs: none follow them
            while True:
                lines = self.logs(run, after)
                yield from lines
                if lines:
                    after = int(lines[-1].id)
                if len(lines) < LOG_PAGE:
                    break
            if ended:
                return
            time.sleep(poll)

    def follow_logs(self, run: RunRef, poll: float = 1.0) -> Iterator[Record]:
        """Every log line, then new ones as they come, until the run ends."""
        return self.iter_logs(run, follow=True, poll=poll)

    def history(
        self, run: RunRef, key: str | None = None
    ) -> dict[str, builtins.list[tuple[int, float]]]:
        """Learning curves and logged values: ``{key: [(step, value), ...]}``.

        Curve keys are ``<fit>/<metric>``, e.g. ``fold_0/valid_loss``, ``final/train_loss``.
        """
        data = self._http.get(f"/runs/{_id(run)}/metrics", key=key)
        return {k: [(int(step), float(value)) for step, value in v] for k, v in data.items()}

    # Files -----------------------------------------------------------------------------

    def artifacts(self, run: RunRef) -> builtins.list[Record]:
        """The run's files: ``name``, ``size_bytes``, ``media_type``, ``digest``."""
        return [Record(x) for x in self._http.get(f"/runs/{_id(run)}/artifacts")]

    def download_artifact(
        self,
        run: RunRef,
        name: str,
        dest: str | os.PathLike[str],
        progress: Progress | None = None,
    ) -> Path:
        """Save one file of the run to ``dest`` (a file, or a folder to put it in).

        Written under a temporary name, then renamed: ``dest`` is never half-written.
        """
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / name.rsplit("/", 1)[-1]
        part = dest.with_name(dest.name + ".part")
        try:
            with part.open("wb") as f:
                self._http.download(artifact_path(_id(run), name), f, {}, progress)
            part.replace(dest)
        finally:
            part.unlink(missing_ok=True)
        return dest

    def predictions(self, run: RunRef) -> pd.DataFrame:
        """The run's out-of-fold and test predictions (``predictions.parquet``)."""
        import pandas as pd

        buf = io.BytesIO()
        self._http.download(artifact_path(_id(run), PREDICTIONS), buf, {})
        buf.seek(0)
        return pd.read_parquet(buf)

    # Leaderboard -----------------------------------------------------------------------

    def leaderboard(
        self,
        task: TaskRef,
        *,
        algorithm: str | None = None,
        contributor: str | None = None,
        org: str | None = None,
        kind: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Leaderboard:
        """Succeeded runs on a task, best first by its primary metric (mean over folds).

        Filter by ``algorithm``, ``contributor`` (username), ``org`` (the
        contributor's organisation) or ``kind`` (``platform``, ``external``, ``logged``).
        """
        data = self._http.get(
            f"/tasks/{self.task_id(task)}/leaderboard",
            algorithm=algorithm,
            contributor=contributor,
            org=org,
            kind=kind,
            limit=limit,
            offset=offset,
        )
        return Leaderboard.from_json(data)

    # Your own results (see openmaas.client.tracking) ----------------------------------

    def start(
        self,
        task: TaskRef,
        *,
        name: str = "",
        algorithm: str = "custom",
        params: dict[str, Any] | None = None,
    ) -> ActiveRun:
        """A logged run to log to from any script: ``with client.runs.start(task) as run:``."""
        return tracking.start(self, task, name=name, algorithm=algorithm, params=params)

    def submit_predictions(
        self,
        task: TaskRef,
        predictions: pd.DataFrame | str | os.PathLike[str],
        *,
        algorithm: str = "external",
        params: dict[str, Any] | None = None,
        name: str = "",
        description: str = "",
        format: str | None = None,
    ) -> Run:
        """An external run from predictions made elsewhere; the server scores them."""
        return tracking.submit_predictions(
            self, task, predictions, algorithm=algorithm, params=params, name=name,
            description=description, format=format,
        )  # fmt: skip


__all__ = ["Algorithms", "RunFailed", "Runs"]
