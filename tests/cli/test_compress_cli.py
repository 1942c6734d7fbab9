"""``openmaas model compress`` against the in-process server, with a worker in a thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import openmaas.jobs.handlers.transform  # noqa: F401  (registers the "transform" job kind)
from openmaas.jobs.worker import Worker
from tests.cli import test_cli
from tests.cli.test_cli import Run, Server
from tests.models import conftest as model_files

home, run, server, admin_env = test_cli.home, test_cli.run, test_cli.server, test_cli.admin_env
project = test_cli.project
booster, cancer, model_txt = model_files.booster, model_files.cancer, model_files.model_txt

pytest.importorskip("onnxruntime")


@pytest.fixture
def worker(admin_env: Server) -> Iterator[Worker]:
    w = Worker(admin_env.platform, kinds=["transform"], concurrency=1, poll_interval=0.05)
    thread = threading.Thread(target=w.run_forever, daemon=True)
    thread.start()
    yield w
    w.stop()
    thread.join(30)
    assert not thread.is_alive()


def test_compress_to_onnx_prints_the_report(
    run: Run, project: str, model_txt: Path, worker: Worker
) -> None:
    run("model", "create", project, "cancer")
    run("model", "upload", "lab/study/cancer", str(model_txt))
    text = run("model", "compress", "cancer@1", "--onnx", "--wait")
    assert "Created version" in text.stdout and "(onnx) by onnx of cancer@1" in text.stdout
    assert "size" in text.stdout and "latency per row" in text.stdout
    assert "faster" in text.stdout or "slower" in text.stdout or "x" in text.stdout
    run("model", "versions", "cancer")

    bad = run("model", "compress", "cancer@1", "--quantize", code=1)
    assert "int8 quantisation applies" in bad.stderr
    both = run("model", "compress", "cancer@1", "--onnx", "--distill", code=1)
    assert "give one of --onnx, --quantize, --distill" in both.stderr
