"""The authorization matrix, generated from the app's routes.

Every route under ``/api/v1`` and every method must have a rule in
``expectations.EXPECTATIONS``; each rule is checked for every role (an
anonymous caller, an outsider, a viewer, a contributor, a partner
organisation's member, a maintainer, an owner and the platform admin), on a
private and a public project when the route acts on one. Every top-level list
must show a caller exactly what the single-resource routes let them read.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from openmaas.api.app import create_app
from openmaas.api.schemas import PageOut
from openmaas.config import Settings
from openmaas.domain.context import Platform
from openmaas.testing.world import API, ORG, ROLES, VISIBILITIES, World
from tests.authz.expectations import EXPECTATIONS, OK, READ, Case, resolve

# Routes outside /api/v1: not part of the API (scraped by Prometheus, no data).
OUTSIDE_API = {("GET", "/metrics")}
ERROR_CODES = {401: "unauthenticated", 403: "permission_denied", 404: "not_found"}


def _api_routes(tmp_path: Path) -> list[tuple[str, str, APIRoute]]:
    """Every (method, path, route) of the app, paths with their router prefixes."""
    platform = Platform(Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'x.db'}"))
    app = create_app(platform, prepare=False)
    platform.store.dispose()
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI copies included routes into app.routes
        flat = [(r.path, r) for r in app.routes]
    else:
        flat = [(c.path, c.original_route) for c in iter_route_contexts(app.routes)]
    return [
        (method, re.sub(r"\{(\w+):\w+\}", r"{\1}", path), route)  # {name:path} -> {name}
        for path, route in flat
        if isinstance(route, APIRoute)
        for method in route.methods
    ]


def _route_keys(tmp_path: Path) -> set[tuple[str, str]]:
    routes = {(method, path) for method, path, _ in _api_routes(tmp_path)}
    outside = {(m, p) for m, p in routes if not p.startswith(API + "/")}
    assert outside == OUTSIDE_API, f"API routes must live under {API}: {sorted(outside)}"
    return {(m, p.removeprefix(API)) for m, p in routes - OUTSIDE_API}


def test_every_route_has_an_expectation(tmp_path: Path) -> None:
    routes = _route_keys(tmp_path)
    missing = sorted(routes - EXPECTATIONS.keys())
    stale = sorted(EXPECTATIONS.keys() - routes)
    assert not missing, (
        "routes without an authorization expectation (add them to "
        f"tests/authz/expectations.py): {', '.join(f'{m} {p}' for m, p in missing)}"
    )
    assert not stale, f"expectations for routes that do not exist: {stale}"


CASES = [
    pytest.param(method, path, visibility, role, id=f"{method} {path} {visibility or '-'} {role}")
    for (method, path), rule in EXPECTATIONS.items()
    for visibility in rule.access.visibilities
    for role in ROLES
]


@pytest.mark.parametrize(("method", "path", "visibility", "role"), CASES)
def test_route(world: World, method: str, path: str, visibility: str | None, role: str) -> None:
    rule = EXPECTATIONS[(method, path)]
    case = Case(world, role, visibility)
    url = path.format(**{**case.path_defaults(), **resolve(dict(rule.path), case)})
    r = world.call(
        role,
        method,
        url,
        json=resolve(rule.json, case),
        params=resolve(rule.params, case),
        content=resolve(rule.content, case),
    )
    expected = rule.access.status(visibility, role, rule.ok)
    assert r.status_code == expected, (
        f"{role} {method} {url} ({visibility or 'no'} project): expected {expected}, "
        f"got {r.status_code} {r.text[:300]}"
    )
    if expected in ERROR_CODES:
        assert r.json()["error"]["code"] == ERROR_CODES[expected]


# Lists ---------------------------------------------------------------------------------


def _page(world: World, role: str, path: str, **params: object) -> list[dict[str, typing.Any]]:
    r = world.call(role, "GET", path, params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == len(page["items"]), "the total counts what the caller cannot see"
    return page["items"]  # type: ignore[no-any-return]


def _reads_project(world: World, role: str) -> Callable[[int], bool]:
    """Whether ``role`` may read a project, as the single-resource route says."""
    cache: dict[int, bool] = {}

    def reads(project_id: int) -> bool:
        if project_id not in cache:
            status = world.call(role, "GET", f"/projects/{project_id}").status_code
            assert status in (200, 404), status
            cache[project_id] = status == 200
        return cache[project_id]

    return reads


def _world_readable(role: str) -> dict[str, bool]:
    return {v: READ.status(v, role, OK) == OK for v in VISIBILITIES}


def _check_scoped(world: World, role: str, path: str, resource: str) -> None:
    """The items of projects (of kind ``resource``) a caller lists == those it may read."""
    reads = _reads_project(world, role)
    key = "id" if resource == "project" else "project_id"
    expected = {item["id"] for item in _page(world, "admin", path) if reads(item[key])}
    seen = {item["id"] for item in _page(world, role, path)}
    assert seen == expected
    for visibility, readable in _world_readable(role).items():
        space = world.spaces[visibility]
        assert (getattr(space, f"{resource}_id") in seen) is readable, f"the {visibility} one"
        if resource != "project":
            narrowed = _page(world, role, path, project_id=space.project_id)
            assert bool(narrowed) is readable, f"filtering by the {visibility} project"


def check_projects(world: World, role: str) -> None:
    _check_scoped(world, role, "/projects", "project")
    for visibility, readable in _world_readable(role).items():
        names = {p["name"] for p in _page(world, role, "/projects", org=ORG, name=visibility)}
        assert (visibility in names) is readable, f"{role} filtering by name"
        listed = _page(world, role, "/projects", visibility=visibility)
        assert {p["visibility"] for p in listed} <= {visibility}
        assert (world.spaces[visibility].project_id in {p["id"] for p in listed}) is readable


def check_datasets(world: World, role: str) -> None:
    _check_scoped(world, role, "/datasets", "dataset")


def check_tasks(world: World, role: str) -> None:
    _check_scoped(world, role, "/tasks", "task")
    for visibility, readable in _world_readable(role).items():
        dataset_id = world.spaces[visibility].dataset_id
        tasks = _page(world, role, "/tasks", dataset_id=dataset_id)
        assert bool(tasks) is readable, f"{role} filtering by the {visibility} dataset"


def check_runs(world: World, role: str) -> None:
    _check_scoped(world, role, "/runs", "run")


def check_models(world: World, role: str) -> None:
    _check_scoped(world, role, "/models", "model")


def check_endpoints(world: World, role: str) -> None:
    _check_scoped(world, role, "/endpoints", "endpoint")


def check_algorithms(world: World, role: str) -> None:
    r = world.call(role, "GET", "/algorithms")
    assert r.status_code == 200
    assert r.json() == world.ok("admin", "GET", "/algorithms")  # public, the same for all


def check_orgs(world: World, role: str) -> None:
    names = {o["name"] for o in _page(world, role, "/orgs")}
    if role == "anonymous":
        assert names == set()
    else:
        assert names == {o["name"] for o in _page(world, "admin", "/orgs")}


def check_users(world: World, role: str) -> None:
    r = world.call(role, "GET", "/users", params={"limit": 1000})
    if role == "anonymous":
        assert r.status_code == 401
        return
    everyone = world.ok("admin", "GET", "/users", params={"limit": 1000})
    assert r.json() == everyone


def check_tokens(world: World, role: str) -> None:
    r = world.call(role, "GET", "/tokens")
    if role == "anonymous":
        assert r.status_code == 401
        return
    ids = {t["id"] for t in r.json()}
    assert world.token_ids[role] in ids
    assert not ids & {i for other, i in world.token_ids.items() if other != role}


# Every top-level list route (a GET without path parameters answering a page or a
# list): how to check that a caller sees exactly what they may.
LIST_CHECKS: dict[str, Callable[[World, str], None]] = {
    "/projects": check_projects,
    "/datasets": check_datasets,
    "/tasks": check_tasks,
    "/runs": check_runs,
    "/models": check_models,
    "/endpoints": check_endpoints,
    "/algorithms": check_algorithms,
    "/orgs": check_orgs,
    "/users": check_users,
    "/tokens": check_tokens,
}


def test_every_list_has_a_check(tmp_path: Path) -> None:
    lists = set()
    for method, path, route in _api_routes(tmp_path):
        model = route.response_model
        is_list = typing.get_origin(model) is list or (
            isinstance(model, type) and issubclass(model, PageOut)
        )
        if method == "GET" and "{" not in path and is_list:
            lists.add(path.removeprefix(API))
    assert lists == LIST_CHECKS.keys(), "add a check for each list to LIST_CHECKS"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", sorted(LIST_CHECKS))
def test_list_shows_exactly_what_the_caller_may_read(world: World, path: str, role: str) -> None:
    LIST_CHECKS[path](world, role)


# Beyond the matrix -----------------------------------------------------------------------


@pytest.mark.parametrize("visibility", VISIBILITIES)
@pytest.mark.parametrize("role", ["contributor", "partner"])
def test_contributors_edit_and_delete_their_own(world: World, role: str, visibility: str) -> None:
    project_id = world.spaces[visibility].project_id
    dataset_id = world.new_dataset(project_id, role=role)
    task_id = world.new_task(project_id, dataset_id, role=role)
    other = "partner" if role == "contributor" else "contributor"
    for method, path, body in [
        ("PATCH", f"/datasets/{dataset_id}", {"description": "mine"}),
        ("POST", f"/datasets/{dataset_id}/deprecate", {"reason": "old"}),
        ("PATCH", f"/tasks/{task_id}", {"description": "mine"}),
    ]:
        assert world.call(role, method, path, json=body).status_code == 200
        r = world.call(other, method, path, json=body)
        assert r.status_code == 403, f"{other} edits what {role} made: {r.text}"
        assert "needs the maintainer role; you have contributor" in r.json()["error"]["message"]
    for path in (f"/tasks/{task_id}", f"/datasets/{dataset_id}"):
        assert world.call(other, "DELETE", path).status_code == 403
        assert world.call(role, "DELETE", path).status_code == 204


def test_tokens_of_others_do_not_exist(world: World) -> None:
    token_id = world.new_token("owner")
    for role in ("outsider", "maintainer"):
        r = world.call(role, "DELETE", f"/tokens/{token_id}")
        assert r.status_code == 404 and r.json()["error"]["message"] == "token not found"
    assert world.call("admin", "DELETE", f"/tokens/{token_id}").status_code == 200


def test_a_read_only_token_reads_but_does_not_write(world: World) -> None:
    new = world.ok("owner", "POST", "/tokens", json={"name": "ro", "scopes": ["read"]})
    headers = {"Authorization": f"Bearer {new['token']}"}
    space = world.spaces["private"]
    r = world.call("anonymous", "GET", f"/datasets/{space.dataset_id}", headers=headers)
    assert r.status_code == 200
    r = world.call("anonymous", "PATCH", f"/datasets/{space.dataset_id}", headers=headers, json={})
    assert r.status_code == 403
    assert r.json()["error"]["message"] == "this token lacks the 'write' scope"


def test_a_token_cannot_mint_a_stronger_one(world: World) -> None:
    weak = world.ok("owner", "POST", "/tokens", json={"name": "ro", "scopes": ["read"]})
    headers = {"Authorization": f"Bearer {weak['token']}"}
    body = {"name": "escalated", "scopes": ["read", "write"]}
    r = world.call("anonymous", "POST", "/tokens", headers=headers, json=body)
    assert r.status_code == 403, r.text


@pytest.mark.parametrize("path", ["/projects", "/datasets", "/tasks"])
def test_a_token_without_the_read_scope_lists_nothing(world: World, path: str) -> None:
    new = world.ok("owner", "POST", "/tokens", json={"name": "p", "scopes": ["predict"]})
    headers = {"Authorization": f"Bearer {new['token']}"}
    private = world.spaces["private"].project_id
    assert (
        world.call("anonymous", "GET", f"/projects/{private}", headers=headers).status_code == 403
    )
    r = world.call("anonymous", "GET", path, headers=headers)
    assert r.status_code == 403 or r.json()["items"] == [], r.text


def test_a_read_only_token_of_a_maintainer_reads_the_audit_log(world: World) -> None:
    new = world.ok("maintainer", "POST", "/tokens", json={"name": "ro", "scopes": ["read"]})
    headers = {"Authorization": f"Bearer {new['token']}"}
    private = world.spaces["private"].project_id
    r = world.call("anonymous", "GET", f"/projects/{private}/audit", headers=headers)
    assert r.status_code == 200 and r.json()["total"] > 0
