"""``client.scoring``: a model's predictions for a whole dataset or file, computed as a job.

    job = client.scoring.score("churn@production", dataset=ds)       # a dataset version
    job = client.scoring.score(endpoint="churn", file="rows.csv")    # or an uploaded file
    frame = job.wait().result()       # row, prediction, proba_<class> ...
    job.summary["rows"], job.summary["seconds"]
    job.download("predictions.parquet")

The server checks the request before it queues anything (the version, the
dataset, the columns the model reads), so a mistake raises at once; a worker
then scores the rows in batches and keeps the result file.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from openmaas.client._http import Http, q
from openmaas.client._poll import poll_until_done
from openmaas.client.models import ModelVersion, Record
from openmaas.client.models import record_id as _id
from openmaas.client.registry import Models
from openmaas.errors import InvalidInput, OpenMaaSError

if TYPE_CHECKING:
    import pandas as pd

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
           ".ndjson": "jsonl"}  # fmt: skip
FileSource: TypeAlias = "str | os.PathLike[str] | pd.DataFrame"


class ScoringFailed(OpenMaaSError):
    """A scoring job that was waited for ended ``failed`` or ``cancelled``."""

    code = "scoring_failed"

    def __init__(self, job: ScoringJob) -> None:
        self.job = job
        super().__init__(
            f"scoring job {job.id} {job.state}: {job.error or 'no error recorded'}",
            details={"job_id": job.id, "state": job.state},
        )


class ScoringJob(Record):
    """A batch scoring job: what it scores and its state; once it succeeded,
    ``summary`` (``rows``, ``seconds``, ``columns``, ``classes``, ``digest``) and
    ``result()``, the predictions as a DataFrame."""

    id: int
    state: str  # queued, running, succeeded, failed, cancelled
    model_id: int
    model: str
    version: int
    endpoint: str | None
    input: dict[str, Any]  # {"source": "dataset" | "upload", ...}
    progress: dict[str, Any]
    error: str | None

    def __init__(self, data: dict[str, Any], scoring: Scoring) -> None:
        super().__init__(data)
        self.__dict__["_scoring"] = scoring

    @property
    def summary(self) -> dict[str, Any]:
        """The server's ``result``: rows, seconds, columns, classes, digest (empty until done)."""
        return dict(self._data.get("result") or {})

    @property
    def done(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled")

    def refresh(self) -> ScoringJob:
        return self.__dict__["_scoring"].get(self.id)  # type: ignore[no-any-return]

    def wait(
        self,
        timeout: float | None = None,
        poll: float = 0.5,
        on_progress: Callable[[ScoringJob], None] | None = None,
    ) -> ScoringJob:
        """Poll until the job ends; raises :class:`ScoringFailed` unless it succeeded."""
        return self.__dict__["_scoring"].wait(self, timeout, poll, on_progress)  # type: ignore[no-any-return]

    def result(self) -> pd.DataFrame:
        """The predictions: ``row``, ``prediction`` and ``proba_<class>`` columns."""
        return self.__dict__["_scoring"].result(self)  # type: ignore[no-any-return]

    def download(self, dest: str | os.PathLike[str], format: str | None = None) -> Path:
        return self.__dict__["_scoring"].download(self, dest, format)  # type: ignore[no-any-return]


class Scoring:
    def __init__(self, http: Http, models: Models) -> None:
        self._http = http
        self._models = models

    def score(
        self,
        model: str | ModelVersion | None = None,
        *,
        endpoint: str | None = None,
        dataset: int | Record | None = None,
        dataset_version: int | str = "latest",
        file: FileSource | None = None,
        format: str | None = None,
    ) -> ScoringJob:
        """Queue a scoring job: with a model version (``"name@3"``, ``"name@production"``,
        a :class:`ModelVersion`) or an ``endpoint``'s main version, over a ``dataset``
        version or a ``file`` (CSV, Parquet, JSON Lines, or a DataFrame)."""
        if (model is None) == (endpoint is None):
            raise InvalidInput("give a model version or an endpoint, not both or neither")
        if (dataset is None) == (file is None):
            raise InvalidInput("give a dataset or a file to score, not both or neither")
        if endpoint is not None:
            base = f"/endpoints/{q(endpoint)}/score"
        else:
            assert model is not None
            v = self._models.resolve(model)
            base = f"/models/{v.model_id}/versions/{v.version}/score"
        if dataset is not None:
            body = {"dataset_id": _id(dataset), "version": dataset_version}
            return ScoringJob(self._http.post(base, json=body), self)
        assert file is not None
        return self._upload(base + "/upload", file, format)

    def _upload(self, path: str, file: FileSource, format: str | None) -> ScoringJob:
        if isinstance(file, str | os.PathLike):
            source = Path(file)
            fmt = format or FORMATS.get(source.suffix.lower())
            if fmt is None:
                raise InvalidInput(
                    f"cannot tell the format of {source.name!r}: pass format='csv', "
                    "'parquet' or 'jsonl'"
                )
            params = {"format": fmt, "filename": source.name}
            return ScoringJob(self._http.upload(path, source, params), self)
        with tempfile.TemporaryDirectory(prefix="openmaas-score-") as tmp:
            target = Path(tmp) / "rows.parquet"
            file.to_parquet(target, index=False)
            params = {"format": "parquet", "filename": "dataframe.parquet"}
            return ScoringJob(self._http.upload(path, target, params), self)

    def get(self, job: int | ScoringJob) -> ScoringJob:
        return ScoringJob(self._http.get(f"/scoring/{_id(job)}"), self)

    def wait(
        self,
        job: int | ScoringJob,
        timeout: float | None = None,
        poll: float = 0.5,
        on_progress: Callable[[ScoringJob], None] | None = None,
    ) -> ScoringJob:
        """Poll the job every ``poll`` seconds until it ends; ``TimeoutError`` after
        ``timeout`` seconds, :class:`ScoringFailed` if it did not succeed."""
        current = poll_until_done(
            lambda: self.get(job), f"scoring job {_id(job)}", timeout, poll, on_progress
        )
        if current.state != "succeeded":
            raise ScoringFailed(current)
        return current

    def download(
        self, job: int | ScoringJob, dest: str | os.PathLike[str], format: str | None = None
    ) -> Path:
        """Save the result file (``format`` from ``dest``'s suffix: .parquet or .csv)."""
        path = Path(dest)
        fmt = format or ("csv" if path.suffix.lower() == ".csv" else "parquet")
        current = self.get(job)
        sha = current.summary.get("digest") if fmt == "parquet" else None
        with path.open("wb") as f:
            self._http.download(f"/scoring/{current.id}/result", f, {"format": fmt}, sha256=sha)
        return path

    def result(self, job: int | ScoringJob) -> pd.DataFrame:
        """The result as a DataFrame: ``row``, ``prediction`` and ``proba_<class>`` columns."""
        import pandas as pd

        current = self.get(job)
        buf = io.BytesIO()
        sha = current.summary.get("digest")
        self._http.download(f"/scoring/{current.id}/result", buf, {"format": "parquet"},
                            sha256=sha)  # fmt: skip
        buf.seek(0)
        return pd.read_parquet(buf)
