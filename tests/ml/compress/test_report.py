"""The compression report: sizes, single-thread latency per row, metric change."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from openmaas.ml.compress import artifact_size, compression_report


def test_report_measures_what_each_side_costs(binary: Any) -> None:
    X, y = binary
    rows = X.fillna(0.0).to_numpy()

    def slow(batch: Any) -> Any:
        time.sleep(0.002)
        return np.where(np.arange(len(batch)) % 10 == 0, 1 - y[: len(batch)], y[: len(batch)])

    def fast(batch: Any) -> Any:
        return y[: len(batch)]

    report = compression_report(slow, fast, rows, y, "accuracy", 1000, 250, batch_rows=100)

    assert report["size_bytes"] == {"before": 1000, "after": 250, "ratio": 4.0}
    assert report["metric"]["name"] == "accuracy"
    assert report["metric"]["after"] == 1.0
    assert report["metric"]["change"] == report["metric"]["after"] - report["metric"]["before"]
    assert report["metric"]["change"] > 0.05
    latency = report["latency_per_row_s"]
    assert latency["before"] >= 0.002 / 100
    assert latency["speedup"] > 2
    assert report["latency_one_row_s"]["before"] >= 0.002
    assert report["latency_batch_rows"] == 100
    assert report["eval_rows"] == len(rows)


def test_artifact_size_of_bytes_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "a.txt").write_bytes(b"x" * 10)
    (tmp_path / "b.json").write_bytes(b"y" * 5)
    assert artifact_size(b"abc") == 3
    assert artifact_size(tmp_path / "b.json") == 5
    assert artifact_size(tmp_path) == 15
