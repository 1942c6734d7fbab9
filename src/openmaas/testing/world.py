"""A small populated platform for authorization and fuzz tests, built through the API.

``build_world(http, admin_token, admin_password)`` makes, as real callers would:

- organisation ``lab``: ``owner`` created it; ``maintainer``, ``contributor`` and
  ``viewer`` are members with those roles; it has a service account ``lab.bot``;
- organisation ``uni``, created by ``partner``, with a ``contributor`` grant on
  every project of ``lab`` the world makes;
- ``outsider`` (no organisation) and ``bystander`` (no organisation, never calls:
  the target of membership routes); ``admin`` is the platform admin;
- ``lab2`` and ``guild``, owned by ``owner``: where projects are transferred to,
  and the organisation grant routes add and remove;
- projects ``lab/private`` and ``lab/public``, each with a 40-row CSV dataset
  ``people`` and a holdout task ``people-holdout`` on it, all made by ``owner``.

Every role has a token of its own; ``anonymous`` has none. The ``new_*``
methods make fresh targets (as ``owner``) for calls that destroy what they touch.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import FastAPI
from starlette.testclient import TestClient

from openmaas.config import Settings
from openmaas.domain.context import Platform
from openmaas.domain.identity import bootstrap_admin

if TYPE_CHECKING:
    import pandas as pd

API = "/api/v1"
ROLES = (
    "anonymous",
    "outsider",
    "viewer",
    "contributor",
    "partner",
    "maintainer",
    "owner",
    "admin",
)
VISIBILITIES = ("private", "public")
ORG = "lab"
PARTNER_ORG = "uni"
PARTNER_ROLE = "contributor"
OTHER_ORG = "lab2"
GRANT_ORG = "guild"
PASSWORD = "password-123"  # every user's but the admin's
ADMIN_PASSWORD = "admin-password"
# The roles ``lab`` gives its members; ``owner`` is its creator.
ORG_ROLES = {"maintainer": "maintainer", "contributor": "contributor", "viewer": "viewer"}
CSV = "x,g,y\n" + "".join(f"{i * 0.5},{i % 5},{'yes' if i % 2 else 'no'}\n" for i in range(40))
TASK_SPEC: dict[str, Any] = {
    "type": "binary",
    "target_columns": ["y"],
    "protocol": {"outer": {"method": "holdout"}},
}


class WorldError(RuntimeError):
    """A call that builds the world failed."""


@dataclass(frozen=True)
class Space:
    """A project with the dataset and task the world made in it."""

    project_id: int
    dataset_id: int
    task_id: int
    run_id: int  # trained by a worker when the world is built with running_world
    model_id: int = 0  # a registered model with one uploaded LightGBM version
    version_id: int = 0  # that version's id
    endpoint: str = ""  # an endpoint serving it to the project's members
    endpoint_id: int = 0


@dataclass
class World:
    http: httpx.Client
    tokens: dict[str, str] = field(default_factory=dict)  # role -> secret
    token_ids: dict[str, int] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    spaces: dict[str, Space] = field(default_factory=dict)  # visibility -> space
    service_account: str = ""
    _names: itertools.count[int] = field(default_factory=itertools.count)

    # Calls -------------------------------------------------------------------------

    def headers(self, role: str) -> dict[str, str]:
        token = self.tokens.get(role)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def call(self, role: str, method: str, path: str, **kw: Any) -> httpx.Response:
        """``method`` on ``API + path`` as ``role``."""
        headers = {**self.headers(role), **kw.pop("headers", {})}
        return self.http.request(method, API + path, headers=headers, **kw)

    def ok(self, role: str, method: str, path: str, **kw: Any) -> Any:
        """Like ``call`` but the answer must be a success; returns its JSON (or None)."""
        r = self.call(role, method, path, **kw)
        if not r.is_success:
            raise WorldError(f"{method} {path} as {role}: {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{next(self._names)}"

    # Fresh targets -------------------------------------------------------------------

    def new_project(self, visibility: str, *, name: str | None = None) -> int:
        """A project in ``lab`` shared with ``uni``, like the world's own ones."""
        body = {"org": ORG, "name": name or self.unique("project"), "visibility": visibility}
        project_id = int(self.ok("owner", "POST", "/projects", json=body)["id"])
        grant = {"role": PARTNER_ROLE}
        self.ok("owner", "PUT", f"/projects/{project_id}/grants/{PARTNER_ORG}", json=grant)
        return project_id

    def new_dataset(self, project_id: int, *, role: str = "owner", name: str | None = None) -> int:
        params = {"name": name or self.unique("dataset"), "format": "csv"}
        path = f"/projects/{project_id}/datasets"
        data = self.ok(role, "POST", path, params=params, content=CSV.encode())
        return int(data["dataset"]["id"])

    def new_task(
        self, project_id: int, dataset_id: int, *, role: str = "owner", name: str | None = None
    ) -> int:
        body = {"name": name or self.unique("task"), "dataset_id": dataset_id, "spec": TASK_SPEC}
        return int(self.ok(role, "POST", f"/projects/{project_id}/tasks", json=body)["id"])

    def new_run(self, task_id: int, *, role: str = "owner") -> int:
        """A queued run (nothing trains it unless a worker runs)."""
        body = {"algorithm": "linear"}
        return int(self.ok(role, "POST", f"/tasks/{task_id}/runs", json=body)["id"])

    def new_model(self, project_id: int, *, role: str = "owner", versions: int = 1) -> int:
        """A registered model with ``versions`` uploaded LightGBM versions."""
        body = {"name": self.unique("model"), "description": "a test model"}
        model_id = int(self.ok(role, "POST", f"/projects/{project_id}/models", json=body)["id"])
        for _ in range(versions):
            self.ok(
                role, "POST", f"/models/{model_id}/versions/upload",
                params={"filename": "model.txt"}, content=tiny_lightgbm(),
            )  # fmt: skip
        return model_id

    def new_endpoint(self, project_id: int, version_id: int, *, name: str | None = None) -> str:
        name = name or self.unique("endpoint")
        body = {"name": name, "targets": [{"version_id": version_id, "weight": 100}]}
        self.ok("owner", "POST", f"/projects/{project_id}/endpoints", json=body)
        return name

    def new_logged_run(self, task_id: int, *, role: str = "owner") -> int:
        """A running logged run, for ``role`` to log to."""
        return int(self.ok(role, "POST", f"/tasks/{task_id}/runs/logged", json={})["id"])

    def predictions_csv(self, task_id: int) -> bytes:
        """A valid predictions upload (CSV) for a task: every test row, mostly right."""
        import io

        import pandas as pd

        task = self.ok("owner", "GET", f"/tasks/{task_id}")
        tables = []
        for path in (
            f"/datasets/{task['dataset_id']}/versions/{task['dataset_version']}/download",
            f"/tasks/{task_id}/splits",
        ):
            r = self.call("owner", "GET", path)
            if not r.is_success:
                raise WorldError(f"GET {path}: {r.status_code} {r.text[:500]}")
            tables.append(pd.read_parquet(io.BytesIO(r.content)))
        target = task["spec"]["target_columns"][0]
        frame = confident_predictions(tables[0], tables[1], target)
        return frame.to_csv(index=False).encode()

    def new_org(self) -> str:
        """An organisation owned by ``owner`` with ``lab``'s other members and roles."""
        name = self.unique("org")
        self.ok("owner", "POST", "/orgs", json={"name": name})
        for username, role in ORG_ROLES.items():
            self.ok("owner", "PUT", f"/orgs/{name}/members/{username}", json={"role": role})
        return name

    def new_user(self) -> str:
        """A user without a password or organisation (made by the admin)."""
        name = self.unique("user")
        self.ok("admin", "POST", "/users", json={"username": name})
        return name

    def new_token(self, role: str) -> int:
        return int(self.ok(role, "POST", "/tokens", json={"name": self.unique("token")})["id"])


@functools.cache
def tiny_lightgbm() -> bytes:
    """A small LightGBM binary model over three numeric features ``a``, ``b``, ``c``."""
    import lightgbm as lgb
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 0}
    data = lgb.Dataset(X, y, feature_name=["a", "b", "c"])
    return str(lgb.train(params, data, num_boost_round=10).model_to_string()).encode()


def confident_predictions(
    frame: pd.DataFrame, splits: pd.DataFrame, target: str, confidence: float = 0.8
) -> pd.DataFrame:
    """Predictions of a classification task's test rows (``splits``: the task's split
    table): the true class, with probability ``confidence``, every 7th row wrong."""
    import numpy as np
    import pandas as pd

    rows = np.sort(splits.loc[splits["outer"] >= 0, "row"].to_numpy())
    truth = frame[target].to_numpy()
    classes = np.unique(truth)
    index = np.searchsorted(classes, truth[rows])
    index[::7] = (index[::7] + 1) % len(classes)
    out = pd.DataFrame({"row": rows, "prediction": classes[index]})
    rest = (1 - confidence) / (len(classes) - 1)
    for j, c in enumerate(classes):
        out[f"proba_{c}"] = np.where(index == j, confidence, rest)
    return out


def build_world(http: httpx.Client, admin_token: str, admin_password: str) -> World:
    """Populate an empty platform whose first admin has ``admin_token``."""
    world = World(http)
    world.tokens["admin"] = admin_token
    world.passwords["admin"] = admin_password
    if not world.ok("admin", "GET", "/auth/whoami")["is_admin"]:
        raise WorldError("the admin token is not an admin's")
    world.token_ids["admin"] = int(world.ok("admin", "GET", "/tokens")[0]["id"])
    for role in (*ROLES[1:-1], "bystander"):
        world.ok("admin", "POST", "/users", json={"username": role, "password": PASSWORD})
        world.passwords[role] = PASSWORD
    for role in ROLES[1:-1]:
        new = world.ok(
            "anonymous", "POST", "/auth/login", json={"username": role, "password": PASSWORD}
        )
        world.tokens[role] = new["token"]
        world.token_ids[role] = int(new["id"])

    world.ok("owner", "POST", "/orgs", json={"name": ORG})
    for username, role in ORG_ROLES.items():
        world.ok("owner", "PUT", f"/orgs/{ORG}/members/{username}", json={"role": role})
    bot = world.ok("owner", "POST", f"/orgs/{ORG}/service-accounts", json={"name": "bot"})
    world.service_account = bot["username"]
    world.ok("partner", "POST", "/orgs", json={"name": PARTNER_ORG})
    for name in (OTHER_ORG, GRANT_ORG):
        world.ok("owner", "POST", "/orgs", json={"name": name})

    for visibility in VISIBILITIES:
        project_id = world.new_project(visibility, name=visibility)
        dataset_id = world.new_dataset(project_id, name="people")
        task_id = world.new_task(project_id, dataset_id, name="people-holdout")
        run_id = world.new_run(task_id)
        model_id = world.new_model(project_id)
        version_id = int(world.ok("owner", "GET", f"/models/{model_id}/versions")["items"][0]["id"])
        endpoint = world.new_endpoint(project_id, version_id, name=f"serve-{visibility}")
        endpoint_id = int(world.ok("owner", "GET", f"/endpoints/{endpoint}")["id"])
        world.spaces[visibility] = Space(
            project_id, dataset_id, task_id, run_id, model_id, version_id, endpoint, endpoint_id
        )
    return world


def _train_queued_runs(platform: Platform) -> None:
    import openmaas.jobs.handlers.run  # noqa: F401  (registers the "run" job kind)
    from openmaas.jobs.worker import Worker

    Worker(platform, kinds=["run"], concurrency=1, poll_interval=0.05).run_until_idle(timeout=120)


@contextlib.contextmanager
def running_world(settings: Settings) -> Iterator[tuple[FastAPI, World]]:
    """An app on a fresh platform (empty database in ``settings``) with the world in it."""
    from openmaas.api.app import create_app

    platform = Platform(settings)
    platform.prepare()
    try:
        app = create_app(platform, prepare=False)
        boot = bootstrap_admin(platform, password=ADMIN_PASSWORD)
        if boot.token is None:
            raise WorldError("the database already has an admin: give an empty one")
        with TestClient(app, raise_server_exceptions=False) as http:
            world = build_world(http, boot.token, ADMIN_PASSWORD)
            _train_queued_runs(platform)
            yield app, world
    finally:
        platform.store.dispose()
