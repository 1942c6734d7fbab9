"""A small world for API tests: an organisation, a project and its members."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from starlette.testclient import TestClient

from tests.conftest import sdk


@dataclass
class World:
    admin: object
    owner: object
    owner_token: str
    project_id: int


def make_user(admin, http: TestClient, username: str, password: str = "password-123"):  # type: ignore[no-untyped-def]
    admin.users.create(username, password)
    client = sdk(http, None)
    client.login(username, password)
    return client


@pytest.fixture
def world(admin, http: TestClient) -> World:  # type: ignore[no-untyped-def]
    owner = make_user(admin, http, "olga")
    owner.orgs.create("lab")
    project = owner.projects.create("lab", "study")
    return World(admin=admin, owner=owner, owner_token=owner.token, project_id=project.id)
