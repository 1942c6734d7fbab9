"""Organisations, projects, partner grants, visibility and the audit log."""

from __future__ import annotations

import pytest

from openmaas.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from tests.api.conftest import make_user
from tests.conftest import sdk


def test_private_project_is_invisible_to_outsiders(world, http) -> None:
    eve = make_user(world.admin, http, "eve")
    with pytest.raises(NotFound, match="project not found"):
        eve.projects.get(world.project_id)
    assert [p.id for p in eve.projects.list()] == []
    anon = sdk(http, None)
    r = http.get(f"/api/v1/projects/{world.project_id}")
    assert r.status_code == 404
    assert anon.projects.list().total == 0


def test_public_project_readable_by_anonymous(world, http) -> None:
    world.owner.projects.update(world.project_id, visibility="public")
    anon = sdk(http, None)
    p = anon.projects.get("lab/study")
    assert p.visibility == "public" and p.role is None
    r = http.patch(f"/api/v1/projects/{world.project_id}", json={"description": "x"})
    assert r.status_code == 401


def test_partner_grant_gives_exactly_that_role(world, http) -> None:
    pat = make_user(world.admin, http, "pat")
    pat.orgs.create("uni")
    world.owner.projects.grant(world.project_id, "uni", "viewer")
    assert pat.projects.get(world.project_id).role == "viewer"
    with pytest.raises(
        PermissionDenied, match="manage on this project needs the maintainer role; you have viewer"
    ):
        pat.projects.update(world.project_id, description="nope")  # manage
    world.owner.projects.grant(world.project_id, "uni", "contributor")
    assert pat.projects.get(world.project_id).role == "contributor"
    assert [g.to_dict()["org"] for g in world.owner.projects.grants(world.project_id)] == ["uni"]
    world.owner.projects.revoke_grant(world.project_id, "uni")
    with pytest.raises(NotFound):
        pat.projects.get(world.project_id)


def test_partner_cannot_be_owner(world, http) -> None:
    pat = make_user(world.admin, http, "pat")
    pat.orgs.create("uni")
    with pytest.raises(InvalidInput, match="a partner organisation cannot own the project"):
        world.owner.projects.grant(world.project_id, "uni", "owner")


def test_org_roles_apply_to_projects(world, http) -> None:
    vic = make_user(world.admin, http, "vic")
    world.owner.orgs.set_member("lab", "vic", "viewer")
    assert vic.projects.get(world.project_id).role == "viewer"
    with pytest.raises(PermissionDenied):
        vic.projects.create("lab", "other")
    world.owner.orgs.set_member("lab", "vic", "maintainer")
    assert vic.projects.create("lab", "other").full_name == "lab/other"
    with pytest.raises(PermissionDenied, match="needs the owner role; you have maintainer"):
        vic.projects.delete(world.project_id)


def test_owner_appoints_maintainer(world, http) -> None:
    mia = make_user(world.admin, http, "mia")
    world.owner.projects.set_member(world.project_id, "mia", "maintainer")
    assert mia.projects.get(world.project_id).role == "maintainer"
    assert mia.projects.audit(world.project_id).total > 0
    with pytest.raises(PermissionDenied):
        mia.projects.set_member(world.project_id, "mia", "owner")


def test_org_keeps_an_owner(world) -> None:
    with pytest.raises(Conflict, match="organisation 'lab' must keep at least one owner"):
        world.owner.orgs.remove_member("lab", "olga")


def test_duplicate_and_hostile_names(world) -> None:
    with pytest.raises(Conflict, match="project lab/study already exists"):
        world.owner.projects.create("lab", "study")
    with pytest.raises(InvalidInput, match=r"invalid name '\.\./etc'"):
        world.owner.projects.create("lab", "../etc")
    with pytest.raises(InvalidInput, match="invalid name"):
        world.owner.orgs.create("a b")


def test_audit_log_records_actor_action_and_address(world) -> None:
    world.owner.projects.update(world.project_id, description="new")
    events = world.owner.projects.audit(world.project_id).items
    assert events[0].action == "project.update"
    assert events[0].actor == "olga"
    assert events[0].client_addr == "testclient"
    assert events[0].details == {"description": "new"}
    assert {e.action for e in events} >= {"project.create", "project.update"}


def test_transfer_and_delete(world, http) -> None:
    world.owner.orgs.create("lab2")
    p = world.owner.projects.transfer(world.project_id, "lab2")
    assert p.full_name == "lab2/study"
    world.owner.projects.delete(world.project_id)
    with pytest.raises(NotFound):
        world.owner.projects.get(world.project_id)
