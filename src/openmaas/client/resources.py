"""SDK resources: one class per kind of thing on the server."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openmaas.client._http import Http, Progress, q
from openmaas.client.models import Dataset, DatasetVersion, Page, Project, Record, Task
from openmaas.client.models import record_id as _id
from openmaas.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    import pandas as pd

ProjectRef = int | str | Project
DatasetRef = int | Dataset
TaskRef = int | str | Task
"""A task: its id, a :class:`Task`, or a name (see :meth:`Tasks.resolve`)."""
PAGE_MAX = 1000  # the most a page holds (the server refuses more)

_SUFFIXES = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


class Orgs:
    def __init__(self, http: Http) -> None:
        self._http = http

    def create(self, name: str, *, display_name: str = "", description: str = "") -> Record:
        body = {"name": name, "display_name": display_name, "description": description}
        return Record(self._http.post("/orgs", json=body))

    def list(
        self, q: str | None = None, *, mine: bool = False, limit: int = 50, offset: int = 0
    ) -> Page[Record]:
        return Page.of(self._http.get("/orgs", q=q, mine=mine, limit=limit, offset=offset), Record)

    def get(self, name: str) -> Record:
        return Record(self._http.get(f"/orgs/{q(name)}"))

    def update(self, name: str, **fields: Any) -> Record:
        return Record(self._http.patch(f"/orgs/{q(name)}", json=fields))

    def delete(self, name: str) -> None:
        self._http.delete(f"/orgs/{q(name)}")

    def members(self, name: str) -> list[Record]:
        return [Record(x) for x in self._http.get(f"/orgs/{q(name)}/members")]

    def set_member(self, name: str, username: str, role: str) -> Record:
        return Record(self._http.put(f"/orgs/{q(name)}/members/{q(username)}", json={"role": role}))

    def remove_member(self, name: str, username: str) -> None:
        self._http.delete(f"/orgs/{q(name)}/members/{q(username)}")

    def create_service_account(
        self, name: str, account: str, role: str = "contributor", description: str = ""
    ) -> Record:
        body = {"name": account, "role": role, "description": description}
        return Record(self._http.post(f"/orgs/{q(name)}/service-accounts", json=body))

    def service_accounts(self, name: str) -> list[Record]:
        return [Record(x) for x in self._http.get(f"/orgs/{q(name)}/service-accounts")]

    def service_account_token(
        self,
        name: str,
        username: str,
        *,
        scopes: list[str] | None = None,
        token_name: str = "service",
        expires_in_days: float | None = None,
    ) -> Record:
        body = {
            "name": token_name,
            "scopes": scopes or ["read", "write"],
            "expires_in_days": expires_in_days,
        }
        return Record(
            self._http.post(f"/orgs/{q(name)}/service-accounts/{q(username)}/tokens", json=body)
        )


class Projects:
    def __init__(self, http: Http) -> None:
        self._http = http

    def resolve(self, ref: ProjectRef) -> int:
        """A project id from an id, a Project or an ``"org/name"`` string."""
        if isinstance(ref, Project):
            return int(ref.id)
        if isinstance(ref, int):
            return ref
        if isinstance(ref, str) and ref.isdigit():
            return int(ref)
        org, sep, name = str(ref).partition("/")
        if not sep or not org or not name:
            raise InvalidInput(f"invalid project {ref!r}: use an id or 'org/name'")
        page = self._http.get("/projects", org=org, name=name)
        if not page["items"]:
            raise NotFound(f"project {ref!r} not found")
        return int(page["items"][0]["id"])

    def create(
        self,
        org: str,
        name: str,
        *,
        visibility: str = "private",
        description: str = "",
        licence: str | None = None,
        citation: str | None = None,
    ) -> Project:
        body = {
            "org": org,
            "name": name,
            "visibility": visibility,
            "description": description,
            "licence": licence,
            "citation": citation,
        }
        return Project(self._http.post("/projects", json=body))

    def list(
        self,
        *,
        org: str | None = None,
        q: str | None = None,
        visibility: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Project]:
        data = self._http.get(
            "/projects", org=org, q=q, visibility=visibility, limit=limit, offset=offset
        )
        return Page.of(data, Project)

    def get(self, ref: ProjectRef) -> Project:
        return Project(self._http.get(f"/projects/{self.resolve(ref)}"))

    def update(self, ref: ProjectRef, **fields: Any) -> Project:
        return Project(self._http.patch(f"/projects/{self.resolve(ref)}", json=fields))

    def delete(self, ref: ProjectRef) -> None:
        self._http.delete(f"/projects/{self.resolve(ref)}")

    def transfer(self, ref: ProjectRef, org: str) -> Project:
        return Project(
            self._http.post(f"/projects/{self.resolve(ref)}/transfer", json={"org": org})
        )

    def grants(self, ref: ProjectRef) -> list[Record]:
        return [Record(x) for x in self._http.get(f"/projects/{self.resolve(ref)}/grants")]

    def grant(self, ref: ProjectRef, org: str, role: str) -> Record:
        """Give every member of partner organisation ``org`` a role on the project."""
        path = f"/projects/{self.resolve(ref)}/grants/{q(org)}"
        return Record(self._http.put(path, json={"role": role}))

    def revoke_grant(self, ref: ProjectRef, org: str) -> None:
        self._http.delete(f"/projects/{self.resolve(ref)}/grants/{q(org)}")

    def members(self, ref: ProjectRef) -> list[Record]:
        return [Record(x) for x in self._http.get(f"/projects/{self.resolve(ref)}/members")]

    def set_member(self, ref: ProjectRef, username: str, role: str) -> Record:
        path = f"/projects/{self.resolve(ref)}/members/{q(username)}"
        return Record(self._http.put(path, json={"role": role}))

    def remove_member(self, ref: ProjectRef, username: str) -> None:
        self._http.delete(f"/projects/{self.resolve(ref)}/members/{q(username)}")

    def audit(
        self,
        ref: ProjectRef,
        *,
        action: str | None = None,
        actor: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Record]:
        data = self._http.get(
            f"/projects/{self.resolve(ref)}/audit",
            action=action,
            actor=actor,
            limit=limit,
            offset=offset,
        )
        return Page.of(data, Record)


class Datasets:
    def __init__(self, http: Http, projects: Projects) -> None:
        self._http = http
        self._projects = projects

    def upload(
        self,
        project: ProjectRef,
        data: str | os.PathLike[str] | pd.DataFrame,
        *,
        name: str,
        format: str | None = None,
        description: str | None = None,
        source: str | None = None,
        licence: str | None = None,
        citation: str | None = None,
        tags: list[str] | None = None,
        target: str | None = None,
        types: dict[str, str] | None = None,
        progress: Progress | None = None,
    ) -> Dataset:
        """Upload a CSV, Parquet or JSON Lines file (or a DataFrame) as a new dataset."""
        params = {
            "name": name,
            "description": description,
            "source": source,
            "licence": licence,
            "citation": citation,
            "tags": ",".join(tags) if tags else None,
            "target": target,
            "types": json.dumps(types) if types else None,
        }
        path = f"/projects/{self._projects.resolve(project)}/datasets"
        result = self._send(path, data, format, params, progress)
        return Dataset(result["dataset"])

    def append(
        self,
        dataset: DatasetRef,
        data: str | os.PathLike[str] | pd.DataFrame,
        *,
        format: str | None = None,
        note: str = "",
        target: str | None = None,
        progress: Progress | None = None,
    ) -> DatasetVersion:
        """Append rows as a new version of the dataset (``target``: profile associations)."""
        path = f"/datasets/{_id(dataset)}/versions"
        params = {"note": note, "target": target}
        return DatasetVersion(self._send(path, data, format, params, progress))

    def _send(
        self,
        path: str,
        data: Any,
        format: str | None,
        params: dict[str, Any],
        progress: Progress | None,
    ) -> Any:
        if isinstance(data, str | os.PathLike):
            fmt = format or _SUFFIXES.get(Path(data).suffix.lower())
            if fmt is None:
                raise InvalidInput(
                    f"cannot tell the format of {os.fspath(data)!r}: pass format='csv', "
                    "'parquet' or 'jsonl'"
                )
            return self._http.upload(path, data, {**params, "format": fmt}, progress)
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / "frame.parquet"
            data.to_parquet(file, index=False)
            return self._http.upload(path, file, {**params, "format": "parquet"}, progress)

    def list(
        self,
        *,
        project: ProjectRef | None = None,
        q: str | None = None,
        tags: list[str] | None = None,
        include_deprecated: bool = True,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Dataset]:
        """Datasets you can read, by name substring and tags."""
        data = self._http.get(
            "/datasets",
            project_id=self._projects.resolve(project) if project is not None else None,
            q=q,
            tag=",".join(tags) if tags else None,
            include_deprecated=include_deprecated,
            limit=limit,
            offset=offset,
        )
        return Page.of(data, Dataset)

    def get(self, dataset: DatasetRef) -> Dataset:
        return Dataset(self._http.get(f"/datasets/{_id(dataset)}"))

    def update(self, dataset: DatasetRef, **card: Any) -> Dataset:
        """Edit the data card: description, source, licence, citation, tags."""
        return Dataset(self._http.patch(f"/datasets/{_id(dataset)}", json=card))

    def deprecate(self, dataset: DatasetRef, reason: str) -> Dataset:
        path = f"/datasets/{_id(dataset)}/deprecate"
        return Dataset(self._http.post(path, json={"reason": reason}))

    def undeprecate(self, dataset: DatasetRef) -> Dataset:
        return Dataset(self._http.post(f"/datasets/{_id(dataset)}/undeprecate"))

    def delete(self, dataset: DatasetRef) -> None:
        self._http.delete(f"/datasets/{_id(dataset)}")

    def versions(self, dataset: DatasetRef) -> list[DatasetVersion]:
        return [DatasetVersion(x) for x in self._http.get(f"/datasets/{_id(dataset)}/versions")]

    def version(self, dataset: DatasetRef, version: int | str = "latest") -> DatasetVersion:
        return DatasetVersion(self._http.get(f"/datasets/{_id(dataset)}/versions/{version}"))

    def profile(self, dataset: DatasetRef, version: int | str = "latest") -> dict[str, Any]:
        return self._http.get(f"/datasets/{_id(dataset)}/versions/{version}/profile")  # type: ignore[no-any-return]

    def download(
        self,
        dataset: DatasetRef,
        dest: str | os.PathLike[str],
        *,
        version: int | str = "latest",
        format: str = "parquet",
        progress: Progress | None = None,
    ) -> Path:
        """Save a version as Parquet or CSV; written under a temporary name, then renamed."""
        dest = Path(dest)
        part = dest.with_name(dest.name + ".part")
        path = f"/datasets/{_id(dataset)}/versions/{version}/download"
        try:
            with part.open("wb") as f:
                self._http.download(path, f, {"format": format}, progress)
            part.replace(dest)
        finally:
            part.unlink(missing_ok=True)
        return dest

    def to_pandas(self, dataset: DatasetRef, version: int | str = "latest") -> pd.DataFrame:
        import pandas as pd

        buf = io.BytesIO()
        path = f"/datasets/{_id(dataset)}/versions/{version}/download"
        self._http.download(path, buf, {"format": "parquet"})
        buf.seek(0)
        return pd.read_parquet(buf)


class Tasks:
    def __init__(self, http: Http, projects: Projects, datasets: Datasets) -> None:
        self._http = http
        self._projects = projects
        self._datasets = datasets

    def create(
        self,
        project: ProjectRef,
        name: str,
        dataset: DatasetRef,
        *,
        type: str | None = None,
        target: str | list[str] | None = None,
        metrics: list[str] | None = None,
        protocol: dict[str, Any] | None = None,
        spec: dict[str, Any] | None = None,
        dataset_version: int | str = "latest",
        description: str = "",
        licence: str | None = None,
        citation: str | None = None,
        **type_config: Any,
    ) -> Task:
        """Define a benchmark task; give ``spec`` whole or its parts.

        ``type_config`` holds the type's own settings, e.g.
        ``recommendation={"user_column": "user", "item_column": "item"}``.
        """
        if spec is None:
            if type is None:
                raise InvalidInput("give the task type (binary, multiclass, regression, ...)")
            targets = [target] if isinstance(target, str) else list(target or [])
            spec = {"type": type, "target_columns": targets, "metrics": metrics or []}
            if protocol is not None:
                spec["protocol"] = protocol
            spec.update(type_config)
        body = {
            "name": name,
            "dataset_id": _id(dataset),
            "dataset_version": dataset_version,
            "spec": spec,
            "description": description,
            "licence": licence,
            "citation": citation,
        }
        return self._bind(
            Task(self._http.post(f"/projects/{self._projects.resolve(project)}/tasks", json=body))
        )

    def list(
        self,
        *,
        project: ProjectRef | None = None,
        dataset: DatasetRef | None = None,
        type: str | None = None,
        name: str | None = None,
        q: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Task]:
        data = self._http.get(
            "/tasks",
            project_id=self._projects.resolve(project) if project is not None else None,
            dataset_id=_id(dataset) if dataset is not None else None,
            type=type,
            name=name,
            q=q,
            limit=limit,
            offset=offset,
        )
        page = Page.of(data, Task)
        for task in page:
            self._bind(task)
        return page

    def _bind(self, task: Task) -> Task:
        task._http = self._http  # for task.evaluate(estimator)
        return task

    def resolve(self, task: TaskRef) -> int:
        """A task id from an id, a :class:`Task` or a name: ``NAME`` (the task of that
        name you can read; its newest version) or ``ORG/PROJECT/NAME``, either with
        ``@VERSION`` for another version. A name in several projects is refused: say
        which project."""
        if isinstance(task, Task | int):
            return _id(task)
        text = str(task).strip()
        if text.isdigit():
            return int(text)
        name, at, version = text.partition("@")
        parts = name.split("/")
        if len(parts) not in (1, 3) or not all(parts) or (at and not version.isdigit()):
            raise InvalidInput(
                f"invalid task {task!r}: use an id, NAME or ORG/PROJECT/NAME, "
                "optionally with @VERSION"
            )
        project = self._projects.resolve("/".join(parts[:2])) if len(parts) == 3 else None
        found = [
            t
            for t in self.list(project=project, name=parts[-1], limit=PAGE_MAX)
            if not at or t.version == int(version)
        ]
        if not found:
            raise NotFound(f"task {task!r} not found")
        projects = sorted({int(t.project_id) for t in found})
        if len(projects) > 1:
            raise InvalidInput(
                f"task name {parts[-1]!r} is in {len(projects)} projects (ids "
                f"{', '.join(map(str, projects))}): use ORG/PROJECT/{parts[-1]} or the task id"
            )
        return int(max(found, key=lambda t: int(t.version)).id)

    def get(self, task: TaskRef) -> Task:
        return self._bind(Task(self._http.get(f"/tasks/{self.resolve(task)}")))

    def update(self, task: TaskRef, **fields: Any) -> Task:
        return self._bind(Task(self._http.patch(f"/tasks/{self.resolve(task)}", json=fields)))

    def delete(self, task: TaskRef) -> None:
        self._http.delete(f"/tasks/{self.resolve(task)}")

    def rebase(self, task: TaskRef, dataset_version: int | str = "latest") -> Task:
        """A new version of the task on a newer dataset version; old rows keep their folds."""
        body = {"dataset_version": dataset_version}
        path = f"/tasks/{self.resolve(task)}/rebase"
        return self._bind(Task(self._http.post(path, json=body)))

    def splits(self, task: TaskRef) -> pd.DataFrame:
        """The stored fold of every row: ``row``, ``outer``, ``inner_0`` ... (-1: none)."""
        import pandas as pd

        buf = io.BytesIO()
        self._http.download(f"/tasks/{self.resolve(task)}/splits", buf, {})
        buf.seek(0)
        return pd.read_parquet(buf)


class Tokens:
    def __init__(self, http: Http) -> None:
        self._http = http

    def create(
        self,
        name: str = "token",
        scopes: list[str] | None = None,
        *,
        expires_in_days: float | None = None,
    ) -> Record:
        """A new token; its secret is in ``.token`` and is never shown again."""
        body = {
            "name": name,
            "scopes": scopes or ["read", "write"],
            "expires_in_days": expires_in_days,
        }
        return Record(self._http.post("/tokens", json=body))

    def list(self) -> list[Record]:
        return [Record(x) for x in self._http.get("/tokens")]

    def revoke(self, token_id: int) -> Record:
        return Record(self._http.delete(f"/tokens/{token_id}"))


class Users:
    def __init__(self, http: Http) -> None:
        self._http = http

    def create(
        self,
        username: str,
        password: str | None = None,
        *,
        email: str | None = None,
        display_name: str = "",
        is_admin: bool = False,
    ) -> Record:
        body = {
            "username": username,
            "password": password,
            "email": email,
            "display_name": display_name,
            "is_admin": is_admin,
        }
        return Record(self._http.post("/users", json=body))

    def list(self, limit: int = 50, offset: int = 0) -> list[Record]:
        return [Record(x) for x in self._http.get("/users", limit=limit, offset=offset)]

    def get(self, username: str) -> Record:
        return Record(self._http.get(f"/users/{q(username)}"))

    def change_password(self, old_password: str, new_password: str) -> None:
        body = {"old_password": old_password, "new_password": new_password}
        self._http.post("/auth/password", json=body)
