"""Ids no row can have are ids of nothing: 404 or 422 (empty lists), never a 500.

An id arrives from a URL or a body as a Python ``int``, which has no bound, while
PostgreSQL stores ids as 32-bit ``INTEGER`` and SQLite as 64-bit integers; both
drivers fail on larger values. Generated from the OpenAPI schema: every integer
path or query parameter (and ``version``, a number or 'latest') and every
integer field of a JSON body gets values just past each bound, the rest of the
call being one that succeeds for the admin (the authorization matrix's rules).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from openmaas.testing.world import API, World
from tests.authz.expectations import EXPECTATIONS, Case, resolve

OUT_OF_RANGE = [2**31, 2**63, -(2**63) - 1]


def _is_int(schema: dict[str, Any]) -> bool:
    types = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
    return "integer" in types


def _body_schema(openapi: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    content = op.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    if "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema  # type: ignore[no-any-return]


def _targets(openapi: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    """(method, path, where, name) of every integer a caller sends."""
    for path, operations in openapi["paths"].items():
        for method, op in operations.items():
            key = (method.upper(), path.removeprefix(API))
            for p in op.get("parameters", []):
                if _is_int(p["schema"]) or p["name"] == "version":
                    yield (*key, p["in"], p["name"])
            for name, schema in _body_schema(openapi, op).get("properties", {}).items():
                if _is_int(schema):
                    yield (*key, "body", name)


def test_out_of_range_ids_are_ids_of_nothing(world: World) -> None:
    openapi = world.http.get(f"{API}/openapi.json").json()
    targets = list(_targets(openapi))
    assert len(targets) > 30, "the schema has fewer integer parameters than expected"
    failures = []
    for method, path, where, name in targets:
        rule = EXPECTATIONS[(method, path)]
        case = Case(world, "admin", "private")
        params = {**case.path_defaults(), **resolve(dict(rule.path), case)}
        query = resolve(rule.params, case) or {}
        body = resolve(rule.json, case)
        for value in OUT_OF_RANGE:
            url = path.format(**(params | {name: value} if where == "path" else params))
            r = world.call(
                "admin",
                method,
                url,
                params=query | {name: value} if where == "query" else query,
                json=body | {name: value} if where == "body" else body,
                content=resolve(rule.content, case),
            )
            # A list filtered by such an id is empty; anything else does not exist.
            if r.status_code not in ((200, 422) if where == "query" else (404, 422)):
                failures.append(f"{method} {url} ({where} {name}={value}): {r.status_code}")
    assert not failures, "\n".join(failures)
