"""The ``score`` job: a model version's predictions for every row of a file.

The payload (written by ``openmaas.domain.scoring``) names the version and the
input blob; both were checked when the job was queued. The input is read in
bounded memory (``openmaas.ml.scoring``) and the predictions are stored as a
Parquet blob, which becomes the job's result with the rows and time it took.
A retried attempt simply scores again: nothing is written until the end.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from openmaas.domain import datasets, models
from openmaas.domain.endpoints import add_usage, usage_day
from openmaas.domain.scoring import KIND
from openmaas.errors import NotFound
from openmaas.jobs.kinds import register_kind
from openmaas.jobs.runner import JobContext
from openmaas.ml import flavors
from openmaas.ml.data.schema import Limits
from openmaas.ml.scoring import score_file
from openmaas.store.metadata.tables import Endpoint, ModelFile, ModelVersion


def score(job: JobContext) -> dict[str, Any]:
    payload = job.payload
    source: dict[str, Any] = payload["input"]
    platform = job.platform
    with platform.store.read() as s:
        version = s.get(ModelVersion, int(payload["version_id"]))
        if version is None:
            raise NotFound(f"version {payload['version']} of {payload['model']!r} was deleted")
        files = list(s.scalars(select(ModelFile).where(ModelFile.version_id == version.id)))
    signature = flavors.Signature.from_dict(version.signature)
    settings = platform.settings
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"score-{job.job_id}-", dir=settings.tmp_dir))
    try:
        directory = models.materialize(platform, files, work / "model")
        predictor = flavors.load(version.flavor, directory, signature.names)
        fmt = str(source["format"])
        data = datasets.materialize(platform.as_(), source["digest"], work / f"input.{fmt}")
        job.log(
            f"scoring {source['source']} input ({fmt}) with version {version.version} "
            f"of {payload['model']!r}"
        )
        started = time.perf_counter()
        limits = Limits(settings.max_field_bytes, settings.max_rows, settings.max_columns)
        out = work / "predictions.parquet"
        scored = score_file(data, fmt, predictor, signature, out, limits=limits,
                            progress=lambda rows: job.progress({"rows": rows}))  # fmt: skip
        seconds = time.perf_counter() - started
        info = platform.artifacts.put_file(out)
        job.log(f"scored {scored.rows} rows in {seconds:.2f}s")
        if payload.get("usage"):
            _count_usage(job, payload["usage"], scored.rows)
        return {
            "digest": info.digest,
            "size_bytes": info.size,
            "rows": scored.rows,
            "seconds": round(seconds, 4),
            "columns": scored.columns,
            "classes": scored.classes,
            "model_id": payload["model_id"],
            "version": version.version,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _count_usage(job: JobContext, usage: dict[str, Any], rows: int) -> None:
    """One request of ``rows`` rows on the endpoint's usage, for the job's creator."""
    with job.platform.store.write() as s:
        if s.get(Endpoint, usage["endpoint_id"]) is not None:  # not deleted meanwhile
            add_usage(s, usage["endpoint_id"], usage_day(), usage["consumer"], 1, rows, 0)


register_kind(KIND, score)
