"""What the SDK returns: thin typed views over the server's JSON.

The server's OpenAPI schema is the source of truth for fields; these classes
type the ones code relies on and give attribute access to the rest, so a new
server field never breaks an older SDK.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from openmaas.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

    from openmaas.client._http import Http, Progress
    from openmaas.client.runs import Runs

TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


class Record:
    """A server object: ``rec.name`` or ``rec["name"]``; ``to_dict()`` for all fields."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        try:  # through __dict__: copy and pickle ask before _data is set
            return self.__dict__["_data"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return self._data[name]

    def to_dict(self) -> dict[str, Any]:
        return dict(self._data)

    def __repr__(self) -> str:
        ident = self._data.get("full_name") or self._data.get("name") or self._data.get("id")
        return f"{type(self).__name__}({ident!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and other._data == self._data

    __hash__ = None  # type: ignore[assignment]


class Project(Record):
    id: int
    org: str
    name: str
    full_name: str
    visibility: str


class Dataset(Record):
    id: int
    project_id: int
    name: str
    latest_version: int
    tags: list[str]


class DatasetVersion(Record):
    dataset_id: int
    version: int
    n_rows: int
    digest: str
    columns: list[dict[str, str]]


class Task(Record):
    id: int
    name: str
    version: int
    task_type: str
    dataset_id: int
    dataset_version: int
    spec: dict[str, Any]
    _http: Http | None = None  # the connection that fetched it, for evaluate()

    def evaluate(self, estimator: Any, *, name: str = "", description: str = "") -> Run:
        """Fit ``estimator`` on each outer fold here and upload its test predictions as an
        external run, scored by the server (see :mod:`openmaas.client.tracking`)."""
        from openmaas.client.tracking import evaluate_with

        if self._http is None:
            raise InvalidInput("fetch the task with client.tasks.get(...) to evaluate on it")
        return evaluate_with(self._http, self, estimator, name=name, description=description)


R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class Page(Generic[R]):
    items: list[R]
    total: int
    limit: int
    offset: int

    def __iter__(self) -> Iterator[R]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def of(cls, data: dict[str, Any], kind: type[R]) -> Page[R]:
        return cls(
            items=[kind(x) for x in data["items"]],
            total=data["total"],
            limit=data["limit"],
            offset=data["offset"],
        )


class Algorithm(Record):
    """A catalog algorithm; ``hyperparameters`` are JSON-schema-like dicts (name, type, ...)."""

    name: str
    description: str
    task_types: list[str]
    iterative: bool
    warm_start: bool
    hyperparameters: list[dict[str, Any]]


class LeaderboardEntry(Record):
    rank: int
    run_id: int
    score: float | None
    score_std: float | None
    algorithm: str
    params: dict[str, Any]
    kind: str
    contributor: str
    organisations: list[str]
    wall_time_s: float | None


@dataclass(frozen=True)
class Leaderboard(Page[LeaderboardEntry]):
    """A page of a task's ranking, best first, and what it is ranked by."""

    task_id: int
    metric: str
    direction: str  # "maximize" or "minimize"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Leaderboard:
        return cls(
            items=[LeaderboardEntry(x) for x in data["items"]],
            total=data["total"],
            limit=data["limit"],
            offset=data["offset"],
            task_id=data["task_id"],
            metric=data["metric"],
            direction=data["direction"],
        )


class Run(Record):
    """A run on a task: a snapshot of its fields, bound to the client that fetched it.

    ``refresh()`` and ``wait()`` update the snapshot in place; the other methods
    ask the server about this run (see :class:`openmaas.client.runs.Runs`)::

        run = client.runs.create(task, "lightgbm", {"n_estimators": 200}).wait()
        run.score, run.metrics["roc_auc"]["std"], run.predictions()
    """

    id: int
    task_id: int
    kind: str
    name: str
    algorithm: str
    params: dict[str, Any]
    seed: int
    state: str  # queued, running, succeeded, failed, cancelled
    metric: str
    score: float | None
    score_std: float | None
    metrics: dict[str, Any]  # {metric: {"mean", "std", "folds"}}
    progress: dict[str, Any]  # the latest event while running
    error: str | None
    contributor: str

    def __init__(self, data: dict[str, Any], runs: Runs | None = None) -> None:
        super().__init__(data)
        self._runs = runs

    def __repr__(self) -> str:
        d = self._data
        fields = ", ".join(f"{k}={d.get(k)!r}" for k in ("id", "algorithm", "state"))
        return f"Run({fields})"

    @property
    def done(self) -> bool:
        """Whether the run has ended (succeeded, failed or cancelled)."""
        return self._data.get("state") in TERMINAL_STATES

    def _client(self) -> Runs:
        if self._runs is None:
            raise RuntimeError("this Run is not bound to a client: get it with client.runs.get(id)")
        return self._runs

    def _update(self, other: Run) -> Run:
        self._data = other._data
        return self

    def refresh(self) -> Run:
        """Fetch the run's current fields."""
        return self._update(self._client().get(self.id))

    def wait(
        self,
        timeout: float | None = None,
        poll: float = 0.5,
        on_progress: Callable[[Run], None] | None = None,
        *,
        raise_on_failure: bool = True,
    ) -> Run:
        """Poll until the run ends; see :meth:`Runs.wait`."""
        run = self._client().wait(
            self, timeout, poll, on_progress, raise_on_failure=raise_on_failure
        )
        return self._update(run)

    def logs(self, after_id: int = 0, limit: int = 1000) -> list[Record]:
        return self._client().logs(self, after_id, limit)

    def follow_logs(self, poll: float = 1.0) -> Iterator[Record]:
        return self._client().follow_logs(self, poll)

    def history(self, key: str | None = None) -> dict[str, list[tuple[int, float]]]:
        return self._client().history(self, key)

    def artifacts(self) -> list[Record]:
        return self._client().artifacts(self)

    def download_artifact(
        self, name: str, dest: str | os.PathLike[str], progress: Progress | None = None
    ) -> Path:
        return self._client().download_artifact(self, name, dest, progress)

    def predictions(self) -> pd.DataFrame:
        return self._client().predictions(self)

    def cancel(self) -> Run:
        return self._update(self._client().cancel(self))

    def delete(self) -> None:
        self._client().delete(self)


class Model(Record):
    """A registered model: its card, latest version number and aliases (``{alias: version}``)."""

    id: int
    project_id: int
    project: str  # "org/project"
    name: str
    description: str
    intended_use: str
    licence: str | None
    citation: str | None
    tags: list[str]
    latest_version: int
    aliases: dict[str, int]

    @property
    def full_name(self) -> str:
        """``org/project/name``: a reference no other project's model can shadow."""
        return f"{self._data['project']}/{self._data['name']}"


class ModelVersion(Record):
    """One immutable version of a model: flavour, signature, files and lineage."""

    id: int
    model_id: int
    model: str
    project: str
    version: int
    flavor: str  # pipeline, lightgbm, skops, onnx, pickle
    source: str  # run, upload, mlflow ...
    description: str
    signature: dict[str, Any]  # {"inputs": [{name, kind}], "outputs": {...}}
    task_type: str | None
    metrics: dict[str, Any]
    size_bytes: int
    aliases: list[str]
    lineage: dict[str, int | None]
    files: list[dict[str, Any]]  # {path, size_bytes, digest}

    def __repr__(self) -> str:
        return f"ModelVersion({self.ref!r})"

    @property
    def ref(self) -> str:
        """``org/project/name@version``, the reference that always means this version."""
        d = self._data
        return f"{d['project']}/{d['model']}@{d['version']}"

    @property
    def input_names(self) -> list[str]:
        return [str(c["name"]) for c in self._data["signature"].get("inputs", [])]

    @property
    def classes(self) -> list[Any] | None:
        """The class labels of a classifier, in the order of its probability columns."""
        classes = (self._data["signature"].get("outputs") or {}).get("classes")
        return None if classes is None else list(classes)


def record_id(ref: int | Record) -> int:
    """The id of ``ref``: an id already, or a record the server returned."""
    return ref if isinstance(ref, int) else int(ref.id)
