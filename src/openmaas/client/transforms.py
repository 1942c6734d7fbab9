"""Transform jobs of ``client.models.transform``: a compressed copy of a version, made by a worker.

    job = client.models.transform("churn@3", "onnx")             # or "quantize", "distill"
    version = job.wait()                                         # the new version
    version.transform["report"]["latency_per_row_s"]["speedup"]
    client.models.transform("churn@3", "distill", student="mlp", task_id=12).wait()

The server refuses what cannot work before queueing (a flavour or algorithm
without an ONNX form, quantising trees, distilling without a task), so such a
mistake raises at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from openmaas.client._poll import poll_until_done
from openmaas.client.models import ModelVersion, Record
from openmaas.errors import OpenMaaSError

if TYPE_CHECKING:
    from openmaas.client.registry import Models


class TransformFailed(OpenMaaSError):
    """A transform job that was waited for ended ``failed`` or ``cancelled``."""

    code = "transform_failed"

    def __init__(self, job: TransformJob) -> None:
        self.job = job
        super().__init__(
            f"transform job {job.id} {job.state}: {job.error or 'no error recorded'}",
            details={"job_id": job.id, "state": job.state},
        )


class TransformJob(Record):
    """A queued or finished transform: ``kind``, ``params``, ``state``; once it succeeded,
    ``report`` (size, latency, metric before and after) and :meth:`wait` gives the version."""

    id: int
    state: str  # queued, running, succeeded, failed, cancelled
    model_id: int
    model: str
    version: int  # the version transformed
    kind: str
    params: dict[str, Any]
    error: str | None

    def __init__(self, data: dict[str, Any], models: Models) -> None:
        super().__init__(data)
        self.__dict__["_models"] = models

    @property
    def done(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled")

    @property
    def report(self) -> dict[str, Any]:
        return dict((self._data.get("result") or {}).get("report") or {})

    def refresh(self) -> TransformJob:
        models = self.__dict__["_models"]
        return TransformJob(models._http.get(f"/transforms/{self.id}"), models)

    def wait(self, timeout: float | None = None, poll: float = 0.5) -> ModelVersion:
        """Poll until the job ends: the new version, :class:`TransformFailed` if it did not
        succeed, ``TimeoutError`` after ``timeout`` seconds."""
        current = poll_until_done(self.refresh, f"transform job {self.id}", timeout, poll)
        if current.state != "succeeded":
            raise TransformFailed(current)
        number = int(current._data["result"]["version"])
        return self.__dict__["_models"].version(current.model_id, number)  # type: ignore[no-any-return]
