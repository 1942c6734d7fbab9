"""Health, the error shape, OpenAPI and /metrics."""

from __future__ import annotations

from tests.api.conftest import make_user


def test_health(http) -> None:
    r = http.get("/api/v1/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_unknown_route_and_method_use_the_error_shape(http) -> None:
    r = http.get("/api/v1/nope")
    assert r.status_code == 404
    assert r.json() == {"error": {"code": "not_found", "message": "Not Found", "details": {}}}
    r = http.put("/api/v1/health")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_validation_errors_name_the_field(admin) -> None:
    r = admin._http.client.post(
        "http://testserver/api/v1/orgs",
        json={"name": 5},
        headers=admin._http.headers(),
    )
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_input" and err["message"].startswith("name: ")


def test_invalid_json_body_is_422(http, admin_token) -> None:
    r = http.post(
        "/api/v1/orgs",
        content=b"{not json",
        headers={"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input"


def test_openapi_is_served(http) -> None:
    schema = http.get("/api/v1/openapi.json").json()
    assert "/api/v1/projects/{project_id}/datasets" in schema["paths"]


def test_metrics_leak_no_private_names(world, http) -> None:
    world.owner.projects.create("lab", "secret-project")
    http.get("/api/v1/projects/999999")
    body = http.get("/metrics").text
    assert "openmaas_http_requests_total" in body
    assert "secret-project" not in body and "/lab" not in body and "999999" not in body
    assert 'route="/projects/{project_id}"' in body


def test_pagination_bounds(world, http) -> None:
    r = http.get("/api/v1/projects?limit=0")
    assert r.status_code == 422
    r = http.get("/api/v1/projects?limit=5&offset=0")
    assert r.status_code == 200 and r.json()["limit"] == 5
    eve = make_user(world.admin, http, "eve")
    assert eve.projects.list(limit=1).limit == 1
