"""``client.scoring`` on the in-process app: queue, wait, read the predictions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

import openmaas.jobs.handlers.score  # noqa: F401  (registers the "score" job kind)
from openmaas.client import Client
from openmaas.domain.context import Platform
from openmaas.errors import InvalidInput
from openmaas.jobs.worker import Worker
from tests.models import conftest as model_files

booster, cancer, model_txt = model_files.booster, model_files.cancer, model_files.model_txt
FEATURES = [f"f{i}" for i in range(30)]


@pytest.fixture
def worker(platform: Platform) -> Iterator[Worker]:
    """A worker serving scoring jobs in a thread for the whole test."""
    w = Worker(platform, kinds=["score"], concurrency=1, poll_interval=0.05)
    thread = threading.Thread(target=w.run_forever, daemon=True)
    thread.start()
    yield w
    w.stop()
    thread.join(30)
    assert not thread.is_alive()


def test_score_a_dataset_and_a_frame_then_read_the_result(
    admin: Client, cancer, booster: lgb.Booster, model_txt: Path, worker: Worker
) -> None:  # type: ignore[no-untyped-def]
    X, y = cancer
    admin.orgs.create("lab")
    admin.projects.create("lab", "study")
    model = admin.models.create("lab/study", "cancer")
    admin.models.upload(model, model_txt)
    frame = pd.DataFrame(X, columns=FEATURES)
    ds = admin.datasets.upload("lab/study", frame.assign(label=y), name="cancer")

    job = admin.scoring.score("cancer@1", dataset=ds)
    assert job.state == "queued" and job.input["source"] == "dataset"
    done = job.wait(timeout=120)
    assert done.summary["rows"] == len(X)
    result = done.result()
    assert list(result.columns) == ["row", "prediction"]
    np.testing.assert_allclose(result["prediction"], booster.predict(X))

    ended = admin.scoring.score("lab/study/cancer", file=frame.iloc[:25]).wait(timeout=120)
    np.testing.assert_allclose(ended.result()["prediction"], booster.predict(X[:25]))
    out = ended.download(Path(model_txt).parent / "scored.csv")
    assert pd.read_csv(out)["row"].tolist() == list(range(25))

    with pytest.raises(InvalidInput, match=r"^the input lacks column\(s\) the model reads: 'f29'"):
        admin.scoring.score("cancer", file=frame.drop(columns=["f29"]))
    with pytest.raises(InvalidInput, match=r"^give a model version or an endpoint"):
        admin.scoring.score(dataset=ds)
