"""The one policy function: roles from organisation, partner grant and direct membership."""

from __future__ import annotations

import pytest

from openmaas.domain.policy import Action, OrgAccess, ProjectAccess, Role, decide, role_on
from openmaas.domain.principal import ANONYMOUS, Principal
from openmaas.errors import InvalidInput, NotFound, PermissionDenied, Unauthenticated

LAB, UNI = 1, 2
PRIVATE = ProjectAccess(project_id=10, org_id=LAB, public=False, grants={UNI: Role.contributor})
PUBLIC = ProjectAccess(project_id=11, org_id=LAB, public=True)


def member(role: str, org: int = LAB, user_id: int = 5) -> Principal:
    return Principal(user_id=user_id, username="u", org_roles={org: role})


def test_role_is_highest_of_all_sources() -> None:
    p = member("viewer", UNI)
    assert role_on(p, PRIVATE) is Role.contributor  # the grant, not their org role
    direct = ProjectAccess(10, LAB, False, grants={UNI: Role.viewer}, members={5: Role.maintainer})
    assert role_on(member("viewer", UNI), direct) is Role.maintainer
    assert role_on(Principal(user_id=1, is_admin=True), PRIVATE) is Role.owner


def test_invisible_is_404_not_403() -> None:
    outsider = Principal(user_id=9, username="eve")
    with pytest.raises(NotFound, match="dataset not found"):
        decide(outsider, Action.read, PRIVATE, kind="dataset")
    with pytest.raises(NotFound):
        decide(outsider, Action.administer, PRIVATE)
    with pytest.raises(NotFound):
        decide(ANONYMOUS, Action.read, PRIVATE)


def test_public_read_and_anonymous_write() -> None:
    assert decide(ANONYMOUS, Action.read, PUBLIC) is None
    with pytest.raises(Unauthenticated, match="log in to create this project"):
        decide(ANONYMOUS, Action.create, PUBLIC)
    with pytest.raises(PermissionDenied, match="needs the contributor role; you have no role"):
        decide(Principal(user_id=9), Action.create, PUBLIC)


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("viewer", {Action.read}),
        ("contributor", {Action.read, Action.create}),
        ("maintainer", {Action.read, Action.create, Action.edit, Action.manage, Action.audit}),
        ("owner", set(Action)),
    ],
)
def test_role_ladder(role: str, allowed: set[Action]) -> None:
    p = member(role)
    for action in Action:
        if action in allowed:
            decide(p, action, PRIVATE)
        else:
            with pytest.raises(PermissionDenied):
                decide(p, action, PRIVATE)


def test_contributor_edits_own_resources_only() -> None:
    p = member("contributor")
    decide(p, Action.edit, PRIVATE, kind="dataset", owner_id=5)
    with pytest.raises(PermissionDenied, match="needs the maintainer role; you have contributor"):
        decide(p, Action.edit, PRIVATE, kind="dataset", owner_id=6)


def test_scopes() -> None:
    reader = Principal(user_id=5, org_roles={LAB: "owner"}, scopes=frozenset({"read"}))
    decide(reader, Action.read, PRIVATE)
    with pytest.raises(PermissionDenied, match="this token lacks the 'write' scope"):
        decide(reader, Action.create, PRIVATE)
    predictor = Principal(user_id=5, org_roles={LAB: "owner"}, scopes=frozenset({"predict"}))
    with pytest.raises(PermissionDenied, match="this token lacks the 'read' scope"):
        decide(predictor, Action.read, PRIVATE)


def test_organisations() -> None:
    with pytest.raises(NotFound):
        decide(ANONYMOUS, Action.read, OrgAccess(LAB), kind="organisation")
    decide(Principal(user_id=9), Action.read, OrgAccess(LAB), kind="organisation")
    with pytest.raises(PermissionDenied):
        decide(member("maintainer"), Action.administer, OrgAccess(LAB))
    decide(member("owner"), Action.administer, OrgAccess(LAB))


def test_unknown_role_name() -> None:
    with pytest.raises(InvalidInput, match="unknown role 'boss'; valid roles: viewer, contributor"):
        Role.parse("boss")
