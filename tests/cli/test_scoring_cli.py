"""``openmaas score`` against the in-process server, with a worker in a thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

import openmaas.jobs.handlers.score  # noqa: F401  (registers the "score" job kind)
from openmaas.jobs.worker import Worker
from tests.cli import test_cli
from tests.cli.test_cli import Run, Server, run_json
from tests.models import conftest as model_files

home, run, server, admin_env = test_cli.home, test_cli.run, test_cli.server, test_cli.admin_env
project = test_cli.project
booster, cancer, model_txt = model_files.booster, model_files.cancer, model_files.model_txt


@pytest.fixture
def worker(admin_env: Server) -> Iterator[Worker]:
    w = Worker(admin_env.platform, kinds=["score"], concurrency=1, poll_interval=0.05)
    thread = threading.Thread(target=w.run_forever, daemon=True)
    thread.start()
    yield w
    w.stop()
    thread.join(30)
    assert not thread.is_alive()


def test_score_a_file_and_save_the_result(
    run: Run, project: str, model_txt: Path, cancer, booster: lgb.Booster, worker: Worker,
    tmp_path: Path,
) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    X, _ = cancer
    run("model", "create", project, "cancer")
    run("model", "upload", "lab/study/cancer", str(model_txt))
    rows = tmp_path / "rows.csv"
    pd.DataFrame(X[:40], columns=[f"f{i}" for i in range(30)]).to_csv(rows, index=False)
    out = tmp_path / "scored.parquet"

    text = run("score", "--model", "cancer@1", "--file", str(rows), "--wait", "--out", str(out))
    assert "scored 40 rows" in text.stdout and f"saved to {out}" in text.stdout
    result = pd.read_parquet(out)
    np.testing.assert_allclose(result["prediction"], booster.predict(X[:40]))

    queued = run_json(run, "score", "--model", "cancer", "--file", str(rows))
    assert queued["state"] == "queued" and queued["input"]["filename"] == "rows.csv"
    saved = tmp_path / "again.csv"
    run("score", "--job", str(queued["id"]), "--out", str(saved))
    assert pd.read_csv(saved)["row"].tolist() == list(range(40))

    bad = run("score", "--model", "cancer", "--dataset", "1", "--file", str(rows), code=1)
    assert "give --dataset or --file (one of them)" in bad.stderr
