"""Who may call each route of the API: the authorization matrix, as data.

``EXPECTATIONS`` maps every ``(METHOD, path)`` of the app (paths without the
``/api/v1`` prefix) to a ``Rule``: the status each role gets, and how to build
a call that succeeds for the roles allowed. ``test_matrix.py`` fails for a route
missing here, and for a key here that is no longer a route.

To add a route: pick its ``Access`` row below (or add one, with a comment saying
which part of ``domain/policy.py`` it follows) and give what the call needs:
``path`` parameters beyond the defaults of ``Case.path_defaults``, and a ``json``
body, query ``params`` or raw ``content``. Any value may be a function of the
``Case``, called just before the request; calls that destroy or consume their
target must make a fresh one that way (``fresh_dataset`` ...), so that the cases
pass in any order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from openmaas.testing.scoring import ROWS_CSV, finished_score_job, new_score_job, scoring_body
from openmaas.testing.world import (
    CSV,
    GRANT_ORG,
    ORG,
    OTHER_ORG,
    ROLES,
    TASK_SPEC,
    Space,
    World,
    tiny_lightgbm,
)

OK = 0  # in a row: the rule's success status


def _row(text: str) -> dict[str, int]:
    cells = text.split()
    if len(cells) != len(ROLES):
        raise ValueError(f"{text!r}: give one status for each of {', '.join(ROLES)}")
    return {
        role: OK if cell == "ok" else int(cell) for role, cell in zip(ROLES, cells, strict=True)
    }


@dataclass(frozen=True)
class Access:
    """The status each role gets: per visibility of the project, or one row for all."""

    rows: Mapping[str | None, Mapping[str, int]]

    @classmethod
    def project(cls, *, private: str, public: str) -> Access:
        return cls({"private": _row(private), "public": _row(public)})

    @classmethod
    def anywhere(cls, *, row: str) -> Access:
        return cls({None: _row(row)})

    @property
    def visibilities(self) -> tuple[str | None, ...]:
        return tuple(self.rows)

    def status(self, visibility: str | None, role: str, ok: int) -> int:
        status = self.rows[visibility][role]
        return ok if status == OK else status


# Project routes follow ``policy.decide``: what a caller cannot read is 404; a
# caller who can read but lacks the role gets 403, or 401 when anonymous. The
# partner's organisation has a contributor grant on every project of the world.
#                    anonymous outsider viewer contributor partner maintainer owner admin
READ = Access.project(
    private="        404       404      ok     ok          ok      ok         ok    ok",
    public="         ok        ok       ok     ok          ok      ok         ok    ok",
)
CREATE = Access.project(
    private="        404       404      403    ok          ok      ok         ok    ok",
    public="         401       403      403    ok          ok      ok         ok    ok",
)
# ``edit`` of what ``owner`` made: contributors may edit only their own things.
EDIT_OTHERS = Access.project(
    private="        404       404      403    403         403     ok         ok    ok",
    public="         401       403      403    403         403     ok         ok    ok",
)
MANAGE = EDIT_OTHERS  # project settings, grants, the audit log: maintainers
ADMINISTER = Access.project(
    private="        404       404      403    403         403     403        ok    ok",
    public="         401       403      403    403         403     403        ok    ok",
)
# Calling an endpoint whose audience is the project: its members, whatever the
# project's visibility (``policy.decide_call``); others do not learn it exists.
CALL = Access.project(
    private="        404       404      ok     ok          ok      ok         ok    ok",
    public="         404       404      ok     ok          ok      ok         ok    ok",
)
# Routes not about one project.
#                   anonymous outsider viewer contributor partner maintainer owner admin
ANYONE = Access.anywhere(
    row="           ok        ok       ok     ok          ok      ok         ok    ok",
)
SIGNED_IN = Access.anywhere(
    row="           401       ok       ok     ok          ok      ok         ok    ok",
)
ADMIN_ONLY = Access.anywhere(
    row="           401       403      403    403         403     403        403   ok",
)
# Organisations are visible to every signed-in caller and to no one else; the
# partner belongs to another organisation, so it is an outsider to ``lab``.
# Their owners manage them; their maintainers may also create projects in them.
ORG_READ = Access.anywhere(
    row="           404       ok       ok     ok          ok      ok         ok    ok",
)
ORG_MANAGE = Access.anywhere(
    row="           404       403      403    403         403     ok         ok    ok",
)
ORG_OWNER = Access.anywhere(
    row="           404       403      403    403         403     403        ok    ok",
)


@dataclass(frozen=True)
class Case:
    """One role calling one route, on the project of one visibility (or none)."""

    world: World
    role: str
    visibility: str | None

    @property
    def space(self) -> Space:
        return self.world.spaces[self.visibility or "private"]

    def path_defaults(self) -> dict[str, object]:
        s = self.space
        return {
            "project_id": s.project_id,
            "dataset_id": s.dataset_id,
            "task_id": s.task_id,
            "run_id": s.run_id,
            "model_id": s.model_id,
            "org": ORG,
            "version": "1",
        }


Value = Any  # a value, or a function of the Case giving it (dict values resolved too)


def resolve(value: Value, case: Case) -> Any:
    if callable(value):
        return value(case)
    if isinstance(value, dict):
        return {k: resolve(v, case) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Rule:
    """Who may call a route (``access``, ``ok`` the success status) and with what."""

    access: Access
    ok: int = 200
    path: Mapping[str, Value] = field(default_factory=dict)
    json: Value = None
    params: Value = None
    content: Value = None


# Building calls ---------------------------------------------------------------------


def unique(prefix: str) -> Callable[[Case], str]:
    return lambda case: case.world.unique(prefix)


UPLOAD = {"params": {"name": unique("dataset"), "format": "csv"}, "content": CSV.encode()}
UPLOAD_MORE = {"params": {"format": "csv"}, "content": CSV.encode()}  # rows to append


def password(case: Case) -> str:
    return case.world.passwords.get(case.role, "")


def login_name(case: Case) -> str:
    return "viewer" if case.role == "anonymous" else case.role


def login_password(case: Case) -> str:
    return case.world.passwords[login_name(case)]


def fresh_project(case: Case) -> int:
    assert case.visibility is not None
    return case.world.new_project(case.visibility)


def fresh_dataset(case: Case) -> int:
    return case.world.new_dataset(case.space.project_id)


def fresh_task(case: Case) -> int:
    return case.world.new_task(case.space.project_id, case.space.dataset_id)


def fresh_task_to_rebase(case: Case) -> int:
    """A task on a fresh dataset that then got as many rows again."""
    w, project_id = case.world, case.space.project_id
    dataset_id = w.new_dataset(project_id)
    task_id = w.new_task(project_id, dataset_id)
    w.ok("owner", "POST", f"/datasets/{dataset_id}/versions", **UPLOAD_MORE)
    return task_id


def fresh_run(case: Case) -> int:
    return case.world.new_run(case.space.task_id)


def fresh_logged_run(case: Case) -> int:
    """A running logged run the owner started (logging to it, or ending it, changes it)."""
    return case.world.new_logged_run(case.space.task_id)


_PREDICTIONS: dict[tuple[int, int], bytes] = {}


def predictions_csv(case: Case) -> bytes:
    """A valid predictions upload for the space's task (made once per world and task)."""
    key = (id(case.world), case.space.task_id)
    if key not in _PREDICTIONS:
        _PREDICTIONS[key] = case.world.predictions_csv(case.space.task_id)
    return _PREDICTIONS[key]


def fresh_model(case: Case) -> int:
    return case.world.new_model(case.space.project_id)


def model_ref(case: Case) -> str:
    name = case.world.ok("admin", "GET", f"/models/{case.space.model_id}")["name"]
    return f"{ORG}/{case.visibility}/{name}@1"


def staging_alias(case: Case) -> str:
    """``staging`` set on the space's model (so removing it has something to remove)."""
    path = f"/models/{case.space.model_id}/aliases/staging"
    case.world.ok("owner", "PUT", path, json={"version": 1})
    return "staging"


def endpoint(case: Case) -> str:
    return case.space.endpoint


def fresh_endpoint(case: Case) -> str:
    return case.world.new_endpoint(case.space.project_id, case.space.version_id)


def consumer_org(case: Case) -> str:
    """``GRANT_ORG`` made a consumer of the space's endpoint (so it can be removed)."""
    case.world.ok(
        "owner", "PUT", f"/endpoints/{case.space.endpoint}/consumers/{GRANT_ORG}", json={}
    )
    return GRANT_ORG


def deployment(case: Case) -> dict[str, Any]:
    return {"targets": [{"version_id": case.space.version_id, "weight": 100}]}


def scoring_input(case: Case) -> dict[str, Any]:
    """A dataset version with the columns the space's model reads."""
    return scoring_body(case.world, case.space)


def score_job(case: Case) -> int:
    """A scoring job ``owner`` queued on the space's model."""
    return new_score_job(case.world, case.space)


def scored_job(case: Case) -> int:
    """A scoring job ``owner`` queued that a worker has run (made once per space)."""
    return finished_score_job(case.world, case.space)


def transform_job(case: Case) -> int:
    """A transform (ONNX export) ``owner`` queued on the space's model."""
    path = f"/models/{case.space.model_id}/versions/1/transforms"
    return int(case.world.ok("owner", "POST", path, json={"kind": "onnx"})["id"])


def fresh_org(case: Case) -> str:
    return case.world.new_org()


def fresh_user(case: Case) -> str:
    return case.world.new_user()


def fresh_org_member(case: Case) -> str:
    user = case.world.new_user()
    case.world.ok("owner", "PUT", f"/orgs/{ORG}/members/{user}", json={"role": "viewer"})
    return user


def fresh_grant(case: Case) -> str:
    pid = case.space.project_id
    case.world.ok("owner", "PUT", f"/projects/{pid}/grants/{GRANT_ORG}", json={"role": "viewer"})
    return GRANT_ORG


def fresh_project_member(case: Case) -> str:
    user = case.world.new_user()
    pid = case.space.project_id
    case.world.ok("owner", "PUT", f"/projects/{pid}/members/{user}", json={"role": "viewer"})
    return user


def fresh_token(case: Case) -> int:
    """A token of the caller's own (the owner's for anonymous callers)."""
    return case.world.new_token("owner" if case.role == "anonymous" else case.role)


def service_account(case: Case) -> str:
    return case.world.service_account


# The table ---------------------------------------------------------------------------

EXPECTATIONS: dict[tuple[str, str], Rule] = {
    ("GET", "/health"): Rule(ANYONE),
    # The algorithm catalog is public.
    ("GET", "/algorithms"): Rule(ANYONE),
    ("GET", "/algorithms/{name}"): Rule(ANYONE, path={"name": "linear"}),
    # Identity
    ("POST", "/auth/login"): Rule(
        ANYONE, 201, json={"username": login_name, "password": login_password}
    ),
    ("GET", "/auth/whoami"): Rule(SIGNED_IN),
    ("POST", "/auth/password"): Rule(
        SIGNED_IN, 204, json={"old_password": password, "new_password": password}
    ),
    ("POST", "/users"): Rule(ADMIN_ONLY, 201, json={"username": unique("user")}),
    ("GET", "/users"): Rule(SIGNED_IN),
    ("GET", "/users/{username}"): Rule(SIGNED_IN, path={"username": "owner"}),
    ("POST", "/tokens"): Rule(SIGNED_IN, 201, json={"name": "matrix"}),
    ("GET", "/tokens"): Rule(SIGNED_IN),
    ("DELETE", "/tokens/{token_id}"): Rule(SIGNED_IN, path={"token_id": fresh_token}),
    # Organisations
    ("POST", "/orgs"): Rule(SIGNED_IN, 201, json={"name": unique("org")}),
    ("GET", "/orgs"): Rule(ANYONE),
    ("GET", "/orgs/{org}"): Rule(ORG_READ),
    ("PATCH", "/orgs/{org}"): Rule(ORG_OWNER, json={"description": "edited"}),
    ("DELETE", "/orgs/{org}"): Rule(ORG_OWNER, 204, path={"org": fresh_org}),
    ("GET", "/orgs/{org}/members"): Rule(ORG_READ),
    ("PUT", "/orgs/{org}/members/{username}"): Rule(
        ORG_OWNER, path={"username": fresh_user}, json={"role": "viewer"}
    ),
    ("DELETE", "/orgs/{org}/members/{username}"): Rule(
        ORG_OWNER, 204, path={"username": fresh_org_member}
    ),
    ("POST", "/orgs/{org}/service-accounts"): Rule(ORG_OWNER, 201, json={"name": unique("sa")}),
    ("GET", "/orgs/{org}/service-accounts"): Rule(ORG_OWNER),
    ("POST", "/orgs/{org}/service-accounts/{username}/tokens"): Rule(
        ORG_OWNER, 201, path={"username": service_account}, json={}
    ),
    # Projects
    ("POST", "/projects"): Rule(ORG_MANAGE, 201, json={"org": ORG, "name": unique("project")}),
    ("GET", "/projects"): Rule(ANYONE),
    ("GET", "/projects/{project_id}"): Rule(READ),
    ("PATCH", "/projects/{project_id}"): Rule(MANAGE, json={"description": "edited"}),
    ("DELETE", "/projects/{project_id}"): Rule(ADMINISTER, 204, path={"project_id": fresh_project}),
    ("POST", "/projects/{project_id}/transfer"): Rule(
        ADMINISTER, path={"project_id": fresh_project}, json={"org": OTHER_ORG}
    ),
    ("GET", "/projects/{project_id}/grants"): Rule(READ),
    ("PUT", "/projects/{project_id}/grants/{org}"): Rule(
        MANAGE, path={"org": GRANT_ORG}, json={"role": "viewer"}
    ),
    ("DELETE", "/projects/{project_id}/grants/{org}"): Rule(MANAGE, 204, path={"org": fresh_grant}),
    ("GET", "/projects/{project_id}/members"): Rule(READ),
    ("PUT", "/projects/{project_id}/members/{username}"): Rule(
        ADMINISTER, path={"username": fresh_user}, json={"role": "viewer"}
    ),
    ("DELETE", "/projects/{project_id}/members/{username}"): Rule(
        ADMINISTER, 204, path={"username": fresh_project_member}
    ),
    ("GET", "/projects/{project_id}/audit"): Rule(MANAGE),
    # Datasets
    ("POST", "/projects/{project_id}/datasets"): Rule(CREATE, 201, **UPLOAD),
    ("GET", "/datasets"): Rule(ANYONE),
    ("GET", "/datasets/{dataset_id}"): Rule(READ),
    ("PATCH", "/datasets/{dataset_id}"): Rule(EDIT_OTHERS, json={"description": "edited"}),
    ("POST", "/datasets/{dataset_id}/deprecate"): Rule(EDIT_OTHERS, json={"reason": "old"}),
    ("POST", "/datasets/{dataset_id}/undeprecate"): Rule(EDIT_OTHERS),
    ("DELETE", "/datasets/{dataset_id}"): Rule(
        EDIT_OTHERS, 204, path={"dataset_id": fresh_dataset}
    ),
    ("GET", "/datasets/{dataset_id}/versions"): Rule(READ),
    ("POST", "/datasets/{dataset_id}/versions"): Rule(CREATE, 201, **UPLOAD_MORE),
    ("GET", "/datasets/{dataset_id}/versions/{version}"): Rule(READ),
    ("GET", "/datasets/{dataset_id}/versions/{version}/profile"): Rule(READ),
    ("GET", "/datasets/{dataset_id}/versions/{version}/download"): Rule(READ),
    # Tasks
    ("POST", "/projects/{project_id}/tasks"): Rule(
        CREATE,
        201,
        json={
            "name": unique("task"),
            "dataset_id": lambda case: case.space.dataset_id,
            "spec": TASK_SPEC,
        },
    ),
    ("GET", "/tasks"): Rule(ANYONE),
    ("GET", "/tasks/{task_id}"): Rule(READ),
    ("PATCH", "/tasks/{task_id}"): Rule(EDIT_OTHERS, json={"description": "edited"}),
    ("DELETE", "/tasks/{task_id}"): Rule(EDIT_OTHERS, 204, path={"task_id": fresh_task}),
    ("POST", "/tasks/{task_id}/rebase"): Rule(
        CREATE, 201, path={"task_id": fresh_task_to_rebase}, json={}
    ),
    ("GET", "/tasks/{task_id}/splits"): Rule(READ),
    # Runs: creating one is a contribution; cancelling or deleting another's needs a maintainer.
    ("POST", "/tasks/{task_id}/runs"): Rule(CREATE, 201, json={"algorithm": "linear"}),
    ("GET", "/runs"): Rule(ANYONE),
    ("GET", "/runs/{run_id}"): Rule(READ),
    ("POST", "/runs/{run_id}/cancel"): Rule(EDIT_OTHERS, path={"run_id": fresh_run}),
    ("DELETE", "/runs/{run_id}"): Rule(EDIT_OTHERS, 204, path={"run_id": fresh_run}),
    ("GET", "/runs/{run_id}/logs"): Rule(READ),
    ("GET", "/runs/{run_id}/metrics"): Rule(READ),
    ("GET", "/runs/{run_id}/artifacts"): Rule(READ),
    ("GET", "/runs/{run_id}/artifacts/{name}"): Rule(READ, path={"name": "result.json"}),
    ("GET", "/tasks/{task_id}/leaderboard"): Rule(READ),
    # External and logged runs: uploading predictions or starting a logged run is a
    # contribution; logging to a run edits it (its creator's, so others need a maintainer).
    ("POST", "/tasks/{task_id}/runs/external"): Rule(
        CREATE, 201, params={"format": "csv"}, content=predictions_csv
    ),
    ("POST", "/tasks/{task_id}/runs/logged"): Rule(CREATE, 201, json={"name": "script"}),
    ("POST", "/runs/{run_id}/params"): Rule(
        EDIT_OTHERS, path={"run_id": fresh_logged_run}, json={"params": {"lr": 0.1}}
    ),
    ("POST", "/runs/{run_id}/metrics"): Rule(
        EDIT_OTHERS,
        204,
        path={"run_id": fresh_logged_run},
        json={"metrics": [{"key": "loss", "value": 0.5, "step": 1}]},
    ),
    ("PUT", "/runs/{run_id}/artifacts/{name}"): Rule(
        EDIT_OTHERS,
        201,
        path={"run_id": fresh_logged_run, "name": "model/weights.bin"},
        content=b"weights",
    ),
    ("POST", "/runs/{run_id}/predictions"): Rule(
        EDIT_OTHERS,
        path={"run_id": fresh_logged_run},
        params={"format": "csv"},
        content=predictions_csv,
    ),
    ("POST", "/runs/{run_id}/end"): Rule(
        EDIT_OTHERS, path={"run_id": fresh_logged_run}, json={"state": "succeeded"}
    ),
    # The model registry: contributors register models and versions and move aliases;
    # promotion to ``production`` is a maintainer's (``manage``).
    ("POST", "/projects/{project_id}/models"): Rule(CREATE, 201, json={"name": unique("model")}),
    ("GET", "/models"): Rule(ANYONE),
    ("GET", "/models/resolve"): Rule(READ, params={"ref": model_ref}),
    ("GET", "/models/{model_id}"): Rule(READ),
    ("PATCH", "/models/{model_id}"): Rule(EDIT_OTHERS, json={"description": "changed"}),
    ("DELETE", "/models/{model_id}"): Rule(EDIT_OTHERS, 204, path={"model_id": fresh_model}),
    ("POST", "/models/{model_id}/versions"): Rule(
        CREATE, 201, json=lambda case: {"run_id": case.space.run_id}
    ),
    ("POST", "/models/{model_id}/versions/upload"): Rule(
        CREATE, 201, params={"filename": "model.txt"}, content=lambda case: tiny_lightgbm()
    ),
    ("GET", "/models/{model_id}/versions"): Rule(READ),
    ("GET", "/models/{model_id}/versions/{version}"): Rule(READ),
    ("GET", "/models/{model_id}/versions/{version}/files/{path}"): Rule(
        READ, path={"path": "model.txt"}
    ),
    ("PUT", "/models/{model_id}/aliases/{alias}"): Rule(
        MANAGE, path={"alias": "production"}, json={"version": 1}
    ),
    ("DELETE", "/models/{model_id}/aliases/{alias}"): Rule(CREATE, path={"alias": staging_alias}),
    ("GET", "/models/{model_id}/history"): Rule(READ),
    # Endpoints: deploying and configuring is a maintainer's (``manage``), as are the
    # usage books and the request log; monitoring is readable like the project.
    ("POST", "/projects/{project_id}/endpoints"): Rule(
        MANAGE, 201, json=lambda case: {"name": case.world.unique("ep"), **deployment(case)}
    ),
    ("GET", "/endpoints"): Rule(ANYONE),
    ("GET", "/endpoints/{name}"): Rule(READ, path={"name": endpoint}),
    ("PATCH", "/endpoints/{name}"): Rule(
        MANAGE, path={"name": endpoint}, json={"description": "changed"}
    ),
    ("DELETE", "/endpoints/{name}"): Rule(MANAGE, 204, path={"name": fresh_endpoint}),
    ("PUT", "/endpoints/{name}/deployment"): Rule(MANAGE, path={"name": endpoint}, json=deployment),
    ("PUT", "/endpoints/{name}/consumers/{org}"): Rule(
        MANAGE, path={"name": endpoint, "org": GRANT_ORG}, json={"rate_per_minute": 100}
    ),
    ("DELETE", "/endpoints/{name}/consumers/{org}"): Rule(
        MANAGE, path={"name": endpoint, "org": consumer_org}
    ),
    ("GET", "/endpoints/{name}/usage"): Rule(MANAGE, path={"name": endpoint}),
    ("GET", "/endpoints/{name}/stats"): Rule(READ, path={"name": endpoint}),
    ("GET", "/endpoints/{name}/drift"): Rule(READ, path={"name": endpoint}),
    ("GET", "/endpoints/{name}/quality"): Rule(READ, path={"name": endpoint}),
    ("GET", "/endpoints/{name}/records"): Rule(MANAGE, path={"name": endpoint}),
    ("POST", "/endpoints/{name}/predict"): Rule(
        CALL, path={"name": endpoint}, json={"data": [[0.1, 0.2, 0.3]]}
    ),
    ("POST", "/endpoints/{name}/feedback"): Rule(
        CALL,
        path={"name": endpoint},
        json=lambda case: {"request_id": f"{case.space.version_id}-x", "reward": 1.0},
    ),
    # Batch scoring: with a version, a contribution to the model's project; through an
    # endpoint, whoever may call it. A job is read by its creator and maintainers (``audit``).
    ("POST", "/models/{model_id}/versions/{version}/score"): Rule(CREATE, 201, json=scoring_input),
    ("POST", "/models/{model_id}/versions/{version}/score/upload"): Rule(
        CREATE, 201, params={"format": "csv"}, content=ROWS_CSV.encode()
    ),
    ("POST", "/endpoints/{name}/score"): Rule(
        CALL, 201, path={"name": endpoint}, json=scoring_input
    ),
    ("POST", "/endpoints/{name}/score/upload"): Rule(
        CALL, 201, path={"name": endpoint}, params={"format": "csv"}, content=ROWS_CSV.encode()
    ),
    ("GET", "/scoring/{job_id}"): Rule(MANAGE, path={"job_id": score_job}),
    ("GET", "/scoring/{job_id}/result"): Rule(MANAGE, path={"job_id": scored_job}),
    # Transforms (compression) make a new version: a contribution to the model's project;
    # the job is read like the model.
    ("POST", "/models/{model_id}/versions/{version}/transforms"): Rule(
        CREATE, 201, json={"kind": "onnx"}
    ),
    ("GET", "/transforms/{job_id}"): Rule(READ, path={"job_id": transform_job}),
}
