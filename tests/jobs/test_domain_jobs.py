"""The jobs service users see: reading, listing, cancelling and logs, through the policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from openmaas.domain import jobs
from openmaas.domain.context import Ctx, Platform
from openmaas.domain.jobs import CANCELLED, QUEUED, RUNNING, SUCCEEDED
from openmaas.domain.principal import ANONYMOUS, Principal
from openmaas.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from openmaas.jobs import queue
from openmaas.store.metadata.tables import AuditEvent, Membership, Organization, Project, User
from openmaas.testing.jobs import add_job

ROLES = {"mia": "maintainer", "cora": "contributor", "carl": "contributor", "vic": "viewer"}


@dataclass
class Lab:
    platform: Platform
    project_id: int
    other_project_id: int
    users: dict[str, Principal]

    def as_(self, name: str) -> Ctx:
        if name == "anonymous":
            return self.platform.as_(ANONYMOUS)
        return self.platform.as_(self.users[name])

    def job(self, creator: str, **kw: Any) -> int:
        return add_job(
            self.platform,
            "test.noop",
            project_id=kw.pop("project_id", self.project_id),
            created_by=self.users[creator].user_id,
            **kw,
        )


@pytest.fixture
def lab(platform: Platform) -> Lab:
    with platform.store.write() as s:
        org, elsewhere = Organization(name="lab"), Organization(name="elsewhere")
        s.add_all([org, elsewhere])
        s.flush()
        people = {n: User(username=n) for n in [*ROLES, "otto", "root"]}
        s.add_all(people.values())
        s.flush()
        s.add_all(Membership(org_id=org.id, user_id=people[n].id, role=r) for n, r in ROLES.items())
        project = Project(org_id=org.id, name="p", visibility="private")
        other = Project(org_id=elsewhere.id, name="q", visibility="private")
        s.add_all([project, other])
        s.flush()
        users = {
            n: Principal(
                user_id=u.id,
                username=n,
                is_admin=n == "root",
                org_roles={org.id: ROLES[n]} if n in ROLES else {},
            )
            for n, u in people.items()
        }
        return Lab(platform, project.id, other.id, users)


def test_members_read_jobs_others_cannot_see_them(lab: Lab) -> None:
    job_id = lab.job("cora")
    assert jobs.get(lab.as_("vic"), job_id).kind == "test.noop"
    for outsider in ("otto", "anonymous"):
        with pytest.raises(NotFound, match="job not found"):
            jobs.get(lab.as_(outsider), job_id)
    with pytest.raises(NotFound, match="job not found"):
        jobs.get(lab.as_("vic"), 9999)


def test_platform_jobs_are_for_admins(lab: Lab) -> None:
    job_id = add_job(lab.platform, "test.noop")
    assert jobs.get(lab.as_("root"), job_id).project_id is None
    with pytest.raises(NotFound, match="job not found"):
        jobs.get(lab.as_("mia"), job_id)
    assert [j.id for j in jobs.list_jobs(lab.as_("root")).items] == [job_id]
    assert jobs.list_jobs(lab.as_("mia")).items == []


def test_list_filters_and_scopes(lab: Lab) -> None:
    first, second = lab.job("cora"), lab.job("carl")
    hidden = lab.job("root", project_id=lab.other_project_id)
    with lab.platform.store.write() as s:
        assert jobs.request_cancel(s, first)
    page = jobs.list_jobs(lab.as_("vic"), lab.project_id)
    assert ([j.id for j in page.items], page.total) == ([second, first], 2)
    assert [j.id for j in jobs.list_jobs(lab.as_("vic"), state=QUEUED).items] == [second]
    mine = jobs.list_jobs(lab.as_("vic"), created_by=lab.users["cora"].user_id)
    assert [j.id for j in mine.items] == [first]
    assert jobs.list_jobs(lab.as_("vic"), kind="other").items == []
    assert hidden in [j.id for j in jobs.list_jobs(lab.as_("root")).items]
    with pytest.raises(NotFound, match="project not found"):
        jobs.list_jobs(lab.as_("otto"), lab.project_id)
    with pytest.raises(InvalidInput, match="unknown job state 'done'; valid states: queued, "):
        jobs.list_jobs(lab.as_("vic"), state=["done"])


def test_creators_and_maintainers_cancel(lab: Lab) -> None:
    own, theirs = lab.job("cora"), lab.job("carl")
    assert jobs.cancel(lab.as_("cora"), own).state == CANCELLED
    assert jobs.cancel(lab.as_("cora"), own).state == CANCELLED  # again: a no-op
    with pytest.raises(
        PermissionDenied, match="edit on this job needs the maintainer role; you have contributor"
    ):
        jobs.cancel(lab.as_("cora"), theirs)
    with pytest.raises(PermissionDenied, match="needs the maintainer role; you have viewer"):
        jobs.cancel(lab.as_("vic"), theirs)
    with pytest.raises(NotFound, match="job not found"):
        jobs.cancel(lab.as_("otto"), theirs)
    assert jobs.cancel(lab.as_("mia"), theirs).state == CANCELLED
    with lab.platform.store.read() as s:
        events = s.scalars(select(AuditEvent.actor).where(AuditEvent.action == "job.cancel"))
        assert list(events) == ["cora", "mia"]


def test_cancel_running_asks_the_worker_and_finished_is_a_conflict(lab: Lab) -> None:
    job_id = lab.job("cora")
    claim = queue.claim(lab.platform.store, "w", ["test.noop"], 30)
    assert claim is not None
    job = jobs.cancel(lab.as_("cora"), job_id)
    assert (job.state, job.cancel_requested) == (RUNNING, True)
    assert jobs.logs(lab.as_("vic"), job_id)[-1].message == "cancellation requested by cora"
    assert queue.heartbeat(lab.platform.store, claim).cancel_requested

    done = lab.job("cora")
    done_claim = queue.claim(lab.platform.store, "w", ["test.noop"], 30)
    assert done_claim is not None
    assert queue.transition(lab.platform.store, queue.finish, done_claim, SUCCEEDED)
    with pytest.raises(
        Conflict, match=f"job {done} already succeeded; only queued or running jobs can be"
    ):
        jobs.cancel(lab.as_("cora"), done)


def test_logs_follow_with_after_id(lab: Lab) -> None:
    job_id = lab.job("cora")
    claim = queue.claim(lab.platform.store, "w", ["test.noop"], 30)
    assert claim is not None
    for i in range(3):
        assert queue.log(lab.platform.store, claim, f"line {i}")
    lines = jobs.logs(lab.as_("vic"), job_id)
    assert [line.message for line in lines] == ["attempt 1 on w", "line 0", "line 1", "line 2"]
    newer = jobs.logs(lab.as_("vic"), job_id, after_id=lines[1].id)
    assert [line.message for line in newer] == ["line 1", "line 2"]
    assert jobs.logs(lab.as_("vic"), job_id, attempt=2) == []
    with pytest.raises(NotFound, match="job not found"):
        jobs.logs(lab.as_("otto"), job_id)
