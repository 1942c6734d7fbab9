"""Results from your own machine: logged runs (tracking) and external runs (evaluation).

Log from any script, as with MLflow tracking::

    with client.runs.start(task, name="my-net") as run:
        run.log_params({"lr": 0.01, "layers": 3})
        for epoch in range(10):
            run.log_metric("loss", loss, step=epoch)    # a curve: one value per step
        run.log_model("model.pt")
        run.log_predictions(predictions)                # scored by the server

The run ends ``succeeded`` when the block exits normally, ``failed`` when it
raises. Only predictions rank a run: the server scores them on the task's
stored splits; a logged run without predictions ends without a score.

Evaluate any scikit-learn-compatible estimator on a task's splits here, and
upload its predictions as an external run, as OpenML's ``run_model_on_task``
does::

    run = client.tasks.get(7).evaluate(make_pipeline(StandardScaler(), LogisticRegression()))

For each outer fold a clone of the estimator fits on the fold's training rows
and predicts its test rows (with ``predict_proba`` when it has one). It sees
every column but the targets, a group split's group column and a predefined
split's fold column (as platform runs do); preprocessing is the estimator's
job (pass a Pipeline). Anomaly tasks fit without labels and upload
``-score_samples`` (scikit-learn's detectors score normal rows higher).

Predictions made any other way are uploaded with ``submit_predictions``; the
columns are described in ``openmaas.ml.engine.external``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from openmaas.client._http import CHUNK, Http, q, raise_for_error
from openmaas.client.models import Record, Run, Task
from openmaas.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

    from openmaas.client import Client
    from openmaas.client.resources import TaskRef
    from openmaas.client.runs import Runs

__all__ = ["ActiveRun", "cross_predict", "evaluate", "start", "submit_predictions"]

SUPPORTED_TYPES = ("binary", "multiclass", "regression", "multitarget", "anomaly")
MAX_PARAMS_CHARS = 16_000  # sent in the query string
_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _send_predictions(
    http: Http, path: str, data: Any, params: dict[str, Any], format: str | None
) -> Any:
    """POST a DataFrame (as Parquet) or a CSV/Parquet file as the raw request body."""
    if isinstance(data, str | os.PathLike):
        fmt = format or _SUFFIXES.get(Path(data).suffix.lower())
        if fmt is None:
            raise InvalidInput(f"cannot tell the format of {os.fspath(data)!r}: pass format=")
        return http.upload(path, data, {**params, "format": fmt})
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "predictions.parquet"
        data.to_parquet(file, index=False)
        return http.upload(path, file, {**params, "format": "parquet"})


def _runs_of(http: Http) -> Runs:
    from openmaas.client.resources import Projects
    from openmaas.client.runs import Runs

    return Runs(http, Projects(http))


def submit_predictions(
    runs: Runs,
    task: TaskRef,
    predictions: Any,
    *,
    algorithm: str = "external",
    params: Mapping[str, Any] | None = None,
    name: str = "",
    description: str = "",
    format: str | None = None,
) -> Run:
    """An external run from predictions made anywhere (a DataFrame, or a CSV/Parquet file)."""
    query = {
        "algorithm": algorithm,
        "name": name,
        "description": description,
        "params": _params_json(params or {}),
    }
    path = f"/tasks/{runs.task_id(task)}/runs/external"
    return runs._run(_send_predictions(runs._http, path, predictions, query, format))


# -- logged runs ---------------------------------------------------------------------


def start(
    runs: Runs,
    task: TaskRef,
    *,
    name: str = "",
    algorithm: str = "custom",
    params: Mapping[str, Any] | None = None,
) -> ActiveRun:
    """Start a logged run on ``task``; use it as a context manager (see the module)."""
    body = {"name": name, "algorithm": algorithm, "params": _json_params(params or {})}
    path = f"/tasks/{runs.task_id(task)}/runs/logged"
    return ActiveRun(runs, runs._http.post(path, json=body))


class ActiveRun:
    """A running logged run: log to it, then end it (``with`` ends it for you)."""

    def __init__(self, runs: Runs, data: dict[str, Any]) -> None:
        self._runs = runs
        self._http = runs._http
        self._data = data
        self._steps: dict[str, int] = {}
        self.ended = False

    @property
    def id(self) -> int:
        return int(self._data["id"])

    @property
    def run(self) -> Run:
        """The run as the server has it now."""
        return self._runs.get(self.id)

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Add parameters; a parameter once logged cannot change (the server says 409)."""
        self._http.post(f"/runs/{self.id}/params", json={"params": _json_params(params)})

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self.log_metrics({key: value}, step)

    def log_metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        """Log values at ``step``; without one, each key counts 0, 1, 2 ... as it is logged."""
        items = []
        for key, value in values.items():
            at = self._steps.get(key, 0) if step is None else step
            self._steps[key] = at + 1
            items.append({"key": key, "value": float(value), "step": at})
        self._http.post(f"/runs/{self.id}/metrics", json={"metrics": items})

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> Record:
        """Store a file as ``name`` (its file name by default; ``/`` makes folders)."""
        return Record(_put_file(self._http, f"/runs/{self.id}/artifacts", path, name))

    def log_model(self, path: str | os.PathLike[str], name: str = "model") -> list[Record]:
        """Store a model file, or every file of a model folder, under ``name/``."""
        root = Path(path)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        if not files:
            raise InvalidInput(f"{os.fspath(path)!r} has no files to log")
        prefix = name.strip("/")
        return [
            self.log_artifact(f, f"{prefix}/{f.name if f == root else f.relative_to(root)}")
            for f in files
        ]

    def log_predictions(self, predictions: Any, format: str | None = None) -> Run:
        """Upload predictions (DataFrame or CSV/Parquet file); the server scores them and
        the run takes their score."""
        path = f"/runs/{self.id}/predictions"
        return self._runs._run(_send_predictions(self._http, path, predictions, {}, format))

    def end(self, state: str = "succeeded", error: str | None = None) -> Run:
        """Mark the run ``succeeded`` or ``failed``; it accepts no logs afterwards."""
        if error is not None:
            error = "".join(c if c.isprintable() or c in "\n\t" else "?" for c in error[:10_000])
        body = {"state": state, "error": error}
        run = self._runs._run(self._http.post(f"/runs/{self.id}/end", json=body))
        self.ended = True
        return run

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.ended:
            return
        if exc is None:
            self.end("succeeded")
        else:
            self.end("failed", f"{type(exc).__name__}: {exc}")

    def __repr__(self) -> str:
        return f"ActiveRun(id={self.id})"


def _put_file(http: Http, base: str, file: str | os.PathLike[str], name: str | None) -> Any:
    path = Path(file)
    target = name or path.name
    url = f"{http.base}{base}/{'/'.join(q(part) for part in target.split('/'))}"

    def body() -> Iterator[bytes]:
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk

    headers = {
        **http.headers(),
        "Content-Length": str(path.stat().st_size),
        "Content-Type": "application/octet-stream",
    }
    r = http.client.put(url, content=body(), headers=headers)
    raise_for_error(r)
    return r.json()


# -- evaluating an estimator ----------------------------------------------------------


def evaluate(
    client: Client, task: TaskRef, estimator: Any, *, name: str = "", description: str = ""
) -> Run:
    """Fit ``estimator`` on each outer fold here; upload its predictions as an external run."""
    return evaluate_with(client._http, task, estimator, name=name, description=description)


def evaluate_with(
    http: Http, task: TaskRef, estimator: Any, *, name: str = "", description: str = ""
) -> Run:
    """:func:`evaluate` over an SDK connection (what ``Task.evaluate`` calls)."""
    import io

    import pandas as pd

    runs = _runs_of(http)
    record = task if isinstance(task, Task) else runs._tasks.get(task)
    frames = []
    for path, params in (
        (f"/datasets/{record.dataset_id}/versions/{record.dataset_version}/download",
         {"format": "parquet"}),
        (f"/tasks/{record.id}/splits", {}),
    ):  # fmt: skip
        buf = io.BytesIO()
        http.download(path, buf, params)
        buf.seek(0)
        frames.append(pd.read_parquet(buf))
    predictions = cross_predict(record.spec, frames[0], frames[1], estimator)
    return submit_predictions(
        runs, record, predictions, algorithm=_algorithm(estimator),
        params=_estimator_params(estimator), name=name, description=description,
    )  # fmt: skip


def cross_predict(
    spec: Mapping[str, Any], frame: pd.DataFrame, splits: pd.DataFrame, estimator: Any
) -> pd.DataFrame:
    """Test predictions of a clone of ``estimator`` fitted on each outer fold's training rows.

    ``splits`` is the task's split table (``row``, ``outer``, ``inner_<f>``);
    the result is an upload in the layout the server scores.
    """
    import numpy as np
    import pandas as pd
    from sklearn.base import clone

    kind = spec["type"]
    if kind not in SUPPORTED_TYPES:
        raise InvalidInput(f"evaluating an estimator on a {kind} task is not supported yet")
    targets = list(spec["target_columns"])
    outer_spec = spec.get("protocol", {}).get("outer", {})
    roles = {*targets, outer_spec.get("group_column"), outer_spec.get("column")}
    X = frame.drop(columns=[c for c in frame.columns if c in roles])
    y = frame[targets].to_numpy() if kind == "multitarget" else frame[targets[0]].to_numpy()
    outer = splits.sort_values("row")["outer"].to_numpy()
    n_outer = sum(1 for c in splits.columns if str(c).startswith("inner_"))
    time_ordered = kind == "sequence" or outer_spec.get("method") == "time"
    classes = np.unique(y) if kind in ("binary", "multiclass") else None
    parts = []
    for f in range(n_outer):
        train = (outer == -1) | ((outer >= 0) & (outer < f)) if time_ordered else outer != f
        test = np.flatnonzero(outer == f)
        model = clone(estimator)
        out = pd.DataFrame({"row": test, "outer_fold": f, "part": "test", "inner_fold": -1})
        if kind == "anomaly":
            model.fit(X.iloc[np.flatnonzero(train)])
            out["score"] = -np.asarray(model.score_samples(X.iloc[test]), dtype=np.float64)
        else:
            model.fit(X.iloc[np.flatnonzero(train)], y[train])
            pred = model.predict(X.iloc[test])
            if kind == "multitarget":
                pred = np.asarray(pred).reshape(len(test), -1)
                for j, target in enumerate(targets):
                    out[f"prediction_{target}"] = pred[:, j]
            else:
                out["prediction"] = pred
            if classes is not None and hasattr(model, "predict_proba"):
                proba = np.asarray(model.predict_proba(X.iloc[test]))
                index = {_plain(c): k for k, c in enumerate(model.classes_)}
                for c in classes:
                    k = index.get(_plain(c))
                    out[f"proba_{c}"] = proba[:, k] if k is not None else 0.0
        parts.append(out)
    return pd.concat(parts, ignore_index=True)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _algorithm(estimator: Any) -> str:
    """The estimator's class name (a Pipeline's: its last step's)."""
    steps = getattr(estimator, "steps", None)
    final = steps[-1][1] if isinstance(steps, list) and steps else estimator
    return type(final).__name__[:64]


# -- JSON-safe parameters -------------------------------------------------------------

_SKIP = object()


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "get_params"):
        return _SKIP  # a nested estimator: its own parameters are listed as name__param
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return _json_value(value.item())
    if isinstance(value, list | tuple):
        items = [_json_value(v) for v in value]
        return _SKIP if any(v is _SKIP for v in items) else items
    if isinstance(value, Mapping):
        pairs = {str(k): _json_value(v) for k, v in value.items()}
        return _SKIP if any(v is _SKIP for v in pairs.values()) else pairs
    return repr(value)[:200]


def _json_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with values JSON can carry (others as their repr; estimators left out)."""
    out = {}
    for key, value in params.items():
        safe = _json_value(value)
        if safe is not _SKIP:
            out[str(key)] = safe
    return out


def _estimator_params(estimator: Any) -> dict[str, Any]:
    return _json_params(estimator.get_params(deep=True)) if hasattr(estimator, "get_params") else {}


def _params_json(params: Mapping[str, Any]) -> str | None:
    """The JSON of ``params`` for the query string, longest values dropped past the limit."""
    safe = _json_params(params)
    text = json.dumps(safe, sort_keys=True)
    while len(text) > MAX_PARAMS_CHARS and safe:
        del safe[max(safe, key=lambda k: len(json.dumps(safe[k])))]
        text = json.dumps(safe, sort_keys=True)
    return text if safe else None
