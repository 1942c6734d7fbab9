"""The OpenMaaS Python SDK.

    import openmaas
    client = openmaas.Client("http://127.0.0.1:8000", token="om_...")
    ds = client.datasets.upload("demo/public", "iris.csv", name="iris", target="species")
    df = client.datasets.to_pandas(ds.id)
    run = client.runs.create(task_id, "lightgbm", {"n_estimators": 200}).wait()
    client.models.register_run(client.models.create("demo/public", "iris"), run)
    client.models.load("demo/public/iris").predict(df)  # or "iris@production" ...

Everything the REST API offers is here; errors are the classes of
``openmaas.errors`` (``NotFound``, ``PermissionDenied`` ...).
"""

from __future__ import annotations

from typing import Any

import httpx

from openmaas.client._http import Http
from openmaas.client.endpoints import Endpoint, Endpoints, Prediction
from openmaas.client.local_model import LocalModel
from openmaas.client.models import (
    Algorithm,
    Dataset,
    DatasetVersion,
    Leaderboard,
    LeaderboardEntry,
    Model,
    ModelVersion,
    Page,
    Project,
    Record,
    Run,
    Task,
)
from openmaas.client.registry import Models
from openmaas.client.resources import (
    Datasets,
    Orgs,
    Projects,
    Tasks,
    Tokens,
    Users,
)
from openmaas.client.runs import Algorithms, RunFailed, Runs
from openmaas.client.scoring import Scoring, ScoringFailed, ScoringJob


class Client:
    """A connection to an OpenMaaS server, authenticated by an API token."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        *,
        timeout: float = 600.0,
        http: httpx.Client | None = None,
    ) -> None:
        self._http = Http(url, token, timeout=timeout, http=http)
        self.orgs = Orgs(self._http)
        self.projects = Projects(self._http)
        self.datasets = Datasets(self._http, self.projects)
        self.tasks = Tasks(self._http, self.projects, self.datasets)
        self.tokens = Tokens(self._http)
        self.users = Users(self._http)
        self.algorithms = Algorithms(self._http)
        self.runs = Runs(self._http, self.projects, self.tasks)
        self.endpoints = Endpoints(self._http, self.projects)
        self.models = Models(self._http, self.projects)
        self.scoring = Scoring(self._http, self.models)

    @property
    def token(self) -> str | None:
        return self._http.token

    def login(self, username: str, password: str, token_name: str = "sdk") -> str:
        """Exchange a password for a token, use it from now on, and return it."""
        data = self._http.post(
            "/auth/login",
            json={"username": username, "password": password, "token_name": token_name},
        )
        self._http.token = data["token"]
        return str(data["token"])

    def whoami(self) -> Record:
        return Record(self._http.get("/auth/whoami"))

    def health(self) -> dict[str, Any]:
        return self._http.get("/health")  # type: ignore[no-any-return]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "Algorithm",
    "Client",
    "Dataset",
    "DatasetVersion",
    "Endpoint",
    "Leaderboard",
    "LeaderboardEntry",
    "LocalModel",
    "Model",
    "ModelVersion",
    "Page",
    "Prediction",
    "Project",
    "Record",
    "Run",
    "RunFailed",
    "ScoringFailed",
    "ScoringJob",
    "Task",
]
