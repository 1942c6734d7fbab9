"""``client.endpoints``: deploy model versions as a service, call it, and watch it.

    ep = client.endpoints.create("acme/churn", "churn", "churn@production")
    client.endpoints.canary("churn", "churn@3", "churn@4", percent=10)
    client.endpoints.set_consumer("churn", "partner-org", rate_per_minute=600)
    out = client.endpoints.predict("churn", frame)        # a DataFrame, records or rows
    out.predictions, out.probabilities, out.classes, out.version, out.request_id
    client.endpoints.feedback("churn", out.request_id, reward=1.0)
    client.endpoints.usage("churn")                        # per consumer and day

A version is named by its id, a :class:`ModelVersion` or a reference such as
``"churn@3"``, ``"churn@production"`` or ``"org/project/churn@3"``; references are
resolved to ids once, when deploying, so an alias moving later does not move the
endpoint. Calling (``predict``, ``feedback``) needs nothing but a token with the
``predict`` scope, so a consumer organisation's members call with their own.
"""

from __future__ import annotations

import builtins
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from openmaas.client._http import Http, q, raise_for_error
from openmaas.client.models import ModelVersion, Page, Record
from openmaas.client.resources import ProjectRef, Projects
from openmaas.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

VersionRef = int | str | ModelVersion
TargetSpec = VersionRef | tuple[VersionRef, int]
Targets = TargetSpec | Sequence[TargetSpec]


class Endpoint(Record):
    """A deployed endpoint: its versions (``targets``), audience, routing and limits."""

    id: int
    name: str
    project_id: int
    project: str  # "org/project"
    description: str
    audience: str  # project, consumers, public
    routing: dict[str, Any]  # {"mode": "split"} or {"mode": "bandit", "policy", ...}
    limits: dict[str, Any]  # rate_per_minute, max_rows
    monitoring: dict[str, Any]  # sample_rate, psi_threshold
    generation: int  # bumped by every change; replicas poll it
    targets: list[dict[str, Any]]  # {version_id, model, version, weight, shadow}
    consumers: dict[str, int | None]  # organisation -> its rate limit per minute
    url: str

    @property
    def live(self) -> list[dict[str, Any]]:
        """The versions that answer, heaviest first."""
        return [t for t in self._data["targets"] if not t["shadow"]]

    @property
    def shadows(self) -> list[dict[str, Any]]:
        """The versions that get copies of the traffic but never answer."""
        return [t for t in self._data["targets"] if t["shadow"]]


@dataclass(frozen=True)
class Prediction:
    """What an endpoint answered: one prediction per row, and who answered."""

    predictions: np.ndarray
    request_id: str  # pass to feedback() to reward or label this answer
    version: int  # the id of the model version that answered
    probabilities: np.ndarray | None = None  # rows x classes, for classifiers
    classes: builtins.list[Any] | None = None  # the class of each probability column

    def __len__(self) -> int:
        return len(self.predictions)

    def to_pandas(self) -> pd.DataFrame:
        """``prediction`` and, for classifiers, one ``proba_<class>`` column per class."""
        import pandas as pd

        frame = pd.DataFrame({"prediction": self.predictions})
        if self.probabilities is not None:
            names = self.classes or list(range(self.probabilities.shape[1]))
            for i, c in enumerate(names):
                frame[f"proba_{c}"] = self.probabilities[:, i]
        return frame

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Prediction:
        proba = data.get("probabilities")
        classes = data.get("classes")
        return cls(
            predictions=np.asarray(data["predictions"]),
            request_id=str(data["request_id"]),
            version=int(data["version"]),
            probabilities=None if proba is None else np.asarray(proba, dtype=float),
            classes=None if classes is None else list(classes),
        )


def _json_value(value: Any) -> Any:
    """orjson's fallback: pandas and numpy scalars; missing values become null."""
    import pandas as pd

    if value is pd.NaT or value is pd.NA or value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        item = value.item()
        return None if isinstance(item, float) and not math.isfinite(item) else item
    raise TypeError(f"cannot send a {type(value).__name__} in JSON")


def _dumps(body: Any) -> bytes:
    """JSON without NaN: orjson writes NaN (and infinities) as null, which means missing."""
    return orjson.dumps(body, default=_json_value, option=orjson.OPT_SERIALIZE_NUMPY)


def _frame_body(frame: pd.DataFrame) -> dict[str, Any]:
    columns = [str(c) for c in frame.columns]
    if all(dtype.kind == "f" for dtype in frame.dtypes):  # the common case, serialised in C
        return {"columns": columns, "data": np.ascontiguousarray(frame.to_numpy(dtype=float))}
    return {"columns": columns, "data": frame.to_numpy(dtype=object).tolist()}


def request_body(data: Any) -> bytes:
    """The JSON body for a batch of rows.

    A DataFrame goes as columns + data (by name, so column order does not matter),
    a list of dicts as records, a 2-D list or array as rows in the signature's
    order, and a dict as a ready body (e.g. ``{"dataframe_split": ...}``).
    """
    if isinstance(data, Mapping):
        return _dumps(dict(data))
    if hasattr(data, "to_numpy") and hasattr(data, "columns"):
        return _dumps(_frame_body(data))
    if isinstance(data, np.ndarray):
        if data.ndim != 2:
            raise InvalidInput(
                f"a {data.ndim}-D array cannot be rows: send a 2-D array (one row per line)"
            )
        if data.dtype.kind in "fiub":
            return _dumps({"data": np.ascontiguousarray(data)})
        return _dumps({"data": data.tolist()})
    if isinstance(data, list | tuple):
        rows = list(data)
        if rows and all(isinstance(r, Mapping) for r in rows):
            return _dumps({"records": rows})
        if all(isinstance(r, list | tuple | np.ndarray) for r in rows):
            return _dumps({"data": rows})
        raise InvalidInput("send a list of rows (lists) or a list of records (dicts), not a mix")
    raise InvalidInput(
        f"cannot predict on a {type(data).__name__}: send a DataFrame, a list of records, "
        "a 2-D list or array, or a ready JSON body (dict)"
    )


class Endpoints:
    """Endpoints of the projects you manage, and any endpoint you may call."""

    def __init__(self, http: Http, projects: Projects | None = None) -> None:
        self._http = http
        self._projects = projects or Projects(http)

    # Deploying -----------------------------------------------------------------------

    def version_id(self, ref: VersionRef) -> int:
        """A model version's id from an id, a :class:`ModelVersion` or ``"name@3"``."""
        if isinstance(ref, ModelVersion):
            return int(ref.id)
        if isinstance(ref, numbers.Integral) and not isinstance(ref, bool):
            return int(ref)
        if isinstance(ref, str) and ref.strip():
            if ref.strip().isdigit():
                return int(ref)
            return int(self._http.get("/models/resolve", ref=ref.strip())["id"])
        raise InvalidInput(f"invalid model version {ref!r}: use an id or 'name@version'")

    def _targets(
        self, targets: Targets, shadows: Sequence[VersionRef] | None
    ) -> builtins.list[dict[str, Any]]:
        items: builtins.list[Any] = [targets]  # one version, or one (version, weight)
        if isinstance(targets, Sequence) and not isinstance(targets, str | tuple):
            items = list(targets)
        if not items:
            raise InvalidInput("deploy at least one version")
        out = []
        for item in items:
            if isinstance(item, tuple):
                if len(item) != 2:
                    raise InvalidInput(f"a target is (version, weight), not {item!r}")
                ref, weight = item
                if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
                    raise InvalidInput(f"a target is (version, weight), not {item!r}")
            else:  # a lone version takes all the traffic; several compete (bandit routing)
                ref, weight = item, 100 if len(items) == 1 else 0
            out.append({"version_id": self.version_id(ref), "weight": int(weight)})
        for ref in shadows or []:
            out.append({"version_id": self.version_id(ref), "weight": 0, "shadow": True})
        return out

    def create(
        self,
        project: ProjectRef,
        name: str,
        targets: Targets,
        *,
        shadows: Sequence[VersionRef] | None = None,
        audience: str = "project",
        routing: dict[str, Any] | None = None,
        limits: dict[str, Any] | None = None,
        monitoring: dict[str, Any] | None = None,
        description: str = "",
    ) -> Endpoint:
        """Deploy versions under a new name (unique on the server; maintainers only).

        ``targets``: one version (all the traffic) or ``[(version, weight), ...]`` with
        weights summing to 100; ``shadows`` get copies of the traffic and never answer.
        ``audience``: ``project`` (its members), ``consumers`` (also the organisations
        added with :meth:`set_consumer`) or ``public``. ``routing``:
        ``{"mode": "bandit", "policy": "thompson" | "epsilon_greedy"}`` to learn from
        rewards instead of a fixed split. ``limits``: ``rate_per_minute``, ``max_rows``.
        ``monitoring``: ``sample_rate`` (of requests logged), ``psi_threshold``.
        """
        body = {
            "name": name,
            "targets": self._targets(targets, shadows),
            "description": description,
            "audience": audience,
            "routing": routing,
            "limits": limits,
            "monitoring": monitoring,
        }
        path = f"/projects/{self._projects.resolve(project)}/endpoints"
        return Endpoint(self._http.post(path, json=body))

    def list(
        self, *, project: ProjectRef | None = None, limit: int = 50, offset: int = 0
    ) -> Page[Endpoint]:
        """Endpoints in projects you can read, newest first."""
        data = self._http.get(
            "/endpoints",
            project_id=None if project is None else self._projects.resolve(project),
            limit=limit,
            offset=offset,
        )
        return Page.of(data, Endpoint)

    def get(self, name: str) -> Endpoint:
        return Endpoint(self._http.get(f"/endpoints/{q(name)}"))

    def update(
        self,
        name: str,
        *,
        description: str | None = None,
        audience: str | None = None,
        limits: dict[str, Any] | None = None,
        monitoring: dict[str, Any] | None = None,
    ) -> Endpoint:
        """Change settings; ``limits`` and ``monitoring`` merge into the current ones."""
        fields = {
            "description": description,
            "audience": audience,
            "limits": limits,
            "monitoring": monitoring,
        }
        body = {k: v for k, v in fields.items() if v is not None}
        return Endpoint(self._http.patch(f"/endpoints/{q(name)}", json=body))

    def delete(self, name: str) -> None:
        self._http.delete(f"/endpoints/{q(name)}")

    def deploy(
        self,
        name: str,
        targets: Targets,
        *,
        shadows: Sequence[VersionRef] | None = None,
        routing: dict[str, Any] | None = None,
    ) -> Endpoint:
        """Replace the deployed versions at once; requests in flight finish where they
        started, so no call fails. ``routing`` left ``None`` keeps the current mode."""
        body = {"targets": self._targets(targets, shadows), "routing": routing}
        return Endpoint(self._http.put(f"/endpoints/{q(name)}/deployment", json=body))

    def canary(
        self,
        name: str,
        stable: VersionRef,
        canary: VersionRef,
        percent: int = 10,
        *,
        shadows: Sequence[VersionRef] | None = None,
    ) -> Endpoint:
        """Send ``percent`` of the traffic to ``canary`` and the rest to ``stable``."""
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 < percent < 100:
            raise InvalidInput(f"a canary takes from 1 to 99 percent, not {percent!r}")
        targets = [(stable, 100 - percent), (canary, percent)]
        return self.deploy(name, targets, shadows=shadows, routing={"mode": "split"})

    # Who may call --------------------------------------------------------------------

    def set_consumer(self, name: str, org: str, rate_per_minute: int | None = None) -> Endpoint:
        """Let ``org``'s members call (with audience ``consumers``), with their own limit."""
        path = f"/endpoints/{q(name)}/consumers/{q(org)}"
        return Endpoint(self._http.put(path, json={"rate_per_minute": rate_per_minute}))

    def remove_consumer(self, name: str, org: str) -> Endpoint:
        return Endpoint(self._http.delete(f"/endpoints/{q(name)}/consumers/{q(org)}"))

    # Calling -------------------------------------------------------------------------

    def _call(self, name: str, action: str, body: bytes) -> Any:
        http = self._http
        headers = {**http.headers(), "Content-Type": "application/json"}
        url = f"{http.base}/endpoints/{q(name)}/{action}"
        r = http.client.post(url, content=body, headers=headers)
        raise_for_error(r)
        return orjson.loads(r.content)

    def predict(self, name: str, data: Any) -> Prediction:
        """Predictions for a DataFrame (sent by column name; NaN becomes null), a list of
        records (dicts), a 2-D list or array (columns in the signature's order), or a
        ready JSON body (dict). Raises ``RateLimited`` (with ``retry_after``) past a
        rate limit and ``InvalidInput`` naming the bad column and row."""
        return Prediction.from_json(self._call(name, "predict", request_body(data)))

    def feedback(
        self, name: str, request_id: str, *, reward: float | None = None, label: Any = None
    ) -> Record:
        """A reward (bandit routing learns from it) and/or the true labels of an answer
        (one per row of the request, or one value for a one-row request)."""
        if reward is None and label is None:
            raise InvalidInput("give a reward, a label or both")
        body: dict[str, Any] = {"request_id": request_id}
        if reward is not None:
            body["reward"] = float(reward)
        if label is not None:
            body["label"] = label.tolist() if hasattr(label, "tolist") else label
        return Record(self._call(name, "feedback", _dumps(body)))

    # Watching ------------------------------------------------------------------------

    def usage(self, name: str, *, days: int = 30) -> builtins.list[Record]:
        """Requests, rows and errors per consumer per day, newest first (maintainers)."""
        data = self._http.get(f"/endpoints/{q(name)}/usage", days=days)
        return [Record(x) for x in data]

    def stats(self, name: str, *, windows: int = 60) -> builtins.list[Record]:
        """Per version and minute, newest first: ``version_id``, ``window_start``,
        ``requests``, ``errors``, ``rows``, ``latency_ms_mean`` / ``_p50`` / ``_p95`` /
        ``_p99``, the latency histogram, and raw counters in ``state`` (``feedback``,
        ``reward_sum``, ``shadow_rows``, ``shadow_disagree`` ...). ``version_id`` 0
        counts requests refused before a version was chosen."""
        data = self._http.get(f"/endpoints/{q(name)}/stats", windows=windows)
        return [Record(x) for x in data]

    def drift(self, name: str, *, windows: int = 60) -> Record:
        """Feature drift (PSI, KS) of each version's inputs against its training data's
        profile, and its prediction distribution, over the newest windows.

        ``flagged`` and ``flagged_features`` tell whether to worry; per version,
        ``current`` merges the newest windows until they hold ``min_rows`` rows and
        ``windows`` lists each window's ``features``; ``note`` says why a version
        has no reference (e.g. uploaded without a training dataset)."""
        return Record(self._http.get(f"/endpoints/{q(name)}/drift", windows=windows))

    def quality(self, name: str, *, windows: int = 60) -> Record:
        """Live quality from the labels posted with :meth:`feedback`, per version:
        ``overall`` and per window (accuracy, log loss, Brier for classifiers; MAE,
        RMSE, bias, R² for regressors)."""
        return Record(self._http.get(f"/endpoints/{q(name)}/quality", windows=windows))

    def records(
        self, name: str, kind: str | None = None, *, limit: int = 50, offset: int = 0
    ) -> Page[Record]:
        """The sampled request log (``kind="request"``) and feedback, newest first."""
        data = self._http.get(
            f"/endpoints/{q(name)}/records", kind=kind, limit=limit, offset=offset
        )
        return Page.of(data, Record)


__all__ = ["Endpoint", "Endpoints", "Prediction", "request_body"]
