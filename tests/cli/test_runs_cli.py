"""``openmaas algo | run | leaderboard | worker`` against the in-process server.

Runs are trained by a real in-process worker: before the inspecting commands,
or in a thread while ``run create --wait`` polls.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
from rich.console import Console
from rich.progress import Progress

import openmaas.jobs.handlers.run  # noqa: F401  (registers the "run" job kind)
from openmaas import demo as demo_content
from openmaas.cli.runs import RunProgress, parse_params
from openmaas.client import Algorithm
from openmaas.client import Run as RunRecord
from openmaas.demo import DEMOS, load_demo
from openmaas.domain.context import Platform
from openmaas.jobs.worker import Worker
from openmaas.testing.jobs import wait_for
from tests.cli import test_cli
from tests.cli.test_cli import Run, Server, run_json

# The CLI fixtures of test_cli: a temporary home, a CliRunner, the in-process server.
home, run, server, admin_env = test_cli.home, test_cli.run, test_cli.server, test_cli.admin_env


@pytest.fixture
def demo(run: Run, admin_env: Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Two of the demo tasks (the small ones), their ids as command arguments by name."""
    monkeypatch.setattr(demo_content, "DEMOS", {k: DEMOS[k] for k in ("wine", "diabetes")})
    load_demo(admin_env.platform)
    tasks = run_json(run, "task", "list", "--project", "demo/benchmarks")
    return {t["name"]: str(t["id"]) for t in tasks}


def work(platform: Platform) -> None:
    Worker(platform, kinds=["run"], concurrency=1, poll_interval=0.05).run_until_idle(timeout=120)


@pytest.fixture
def background_worker(admin_env: Server) -> Iterator[Worker]:
    """A worker serving in a thread for the whole test."""
    worker = Worker(admin_env.platform, kinds=["run"], concurrency=1, poll_interval=0.05)
    thread = threading.Thread(target=worker.run_forever, daemon=True)
    thread.start()
    yield worker
    worker.stop()
    thread.join(30)
    assert not thread.is_alive()


# Algorithms ----------------------------------------------------------------------------


def test_help_lists_the_training_commands(run: Run) -> None:
    out = run("--help").stdout
    for name in ("algo", "run", "leaderboard", "worker"):
        assert f"│ {name} " in out
    assert "--param" in run("run", "create", "--help").stdout


def test_algo_list_and_show(run: Run, admin_env: Server) -> None:
    names = [a["name"] for a in run_json(run, "algo", "list")]
    assert {"linear", "lightgbm", "dnn"} <= set(names)
    recommenders = run_json(run, "algo", "list", "--task-type", "recommendation")
    assert [a["name"] for a in recommenders] == ["ncf"]
    table = run("algo", "list", "-t", "regression").stdout
    assert "lightgbm" in table and "Gradient-boosted decision trees" in table
    assert "ncf" not in table

    shown = run("algo", "show", "lightgbm").stdout
    assert "Hyperparameters (--param NAME=VALUE; the seed is --seed)" in shown
    row = next(line for line in shown.splitlines() if "n_estimators" in line)
    for cell in ("int", "100", "[1, 10000] (log)", "Most boosting rounds"):
        assert cell in row
    assert "int or null" in next(line for line in shown.splitlines() if " max_depth " in line)
    assert run_json(run, "algo", "show", "linear")["name"] == "linear"

    result = run("algo", "show", "nope", code=1)
    assert result.stderr.startswith("error: unknown algorithm 'nope'; valid: adaboost, ")
    assert result.stderr.endswith(" (invalid_input)\n")
    run("algo", "list", "--task-type", "astrology", code=2)


# Runs ----------------------------------------------------------------------------------


def test_params_are_typed_by_the_catalog() -> None:
    algorithm = Algorithm(
        {
            "name": "toy",
            "hyperparameters": [
                {"name": "n", "type": "integer"},
                {"name": "rate", "type": "number"},
                {"name": "depth", "type": ["integer", "null"]},
                {"name": "bias", "type": "boolean"},
                {"name": "loss", "type": "string", "enum": ["mse", "huber"]},
            ],
        }
    )
    pairs = ["n=200", "rate=1", "depth=None", "bias=no", "loss=huber", "other=3", "expr=a=b"]
    assert parse_params(pairs, algorithm) == {
        "n": 200, "rate": 1.0, "depth": None, "bias": False, "loss": "huber",
        "other": "3", "expr": "a=b",  # unknown to the catalog: sent as given, for the server
    }  # fmt: skip
    assert parse_params(["n=lots", "depth=7", "bias=maybe"], algorithm) == {
        "n": "lots", "depth": 7, "bias": "maybe"  # the server says what is allowed
    }  # fmt: skip
    for bad, message in [(["=3"], "is not NAME=VALUE"), (["n=1", "n=2"], "'n' is given twice")]:
        with pytest.raises(typer.BadParameter, match=message):
            parse_params(bad, algorithm)


def test_progress_shows_folds_and_epochs() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    with Progress(console=console, auto_refresh=False) as bar:
        show = RunProgress(bar, RunRecord({"id": 7, "algorithm": "dnn", "state": "queued"}))
        folds, epochs = bar.tasks

        def step(state: str, **progress: Any) -> None:
            show(RunRecord({"id": 7, "algorithm": "dnn", "state": state, "progress": progress}))

        step("queued")
        assert folds.description == "run 7 dnn: queued, waiting for a worker"
        step("running", event="fold_start", fold=1, folds=3)
        assert (folds.description, folds.completed, folds.total) == ("run 7 dnn: fold 2 of 3", 1, 3)
        step("running", event="epoch", key="fold_1/inner_0", fold=1, inner=0, epoch=4, metrics={})
        assert (epochs.visible, epochs.completed) == (True, 4)
        assert epochs.description == "  fold_1/inner_0 epochs"
        step("running", event="fold_done", fold=1, folds=3, metrics={})
        assert (folds.completed, epochs.visible) == (2, False)
        step("running", event="fit_start", key="final", fold=-1, inner=None, rows=100)
        assert folds.description == "run 7 dnn: final: fitting on 100 rows"
        assert folds.completed == 3  # the final refit comes after every outer fold
        step("failed")
        assert folds.description == "run 7 dnn: failed"


def test_progress_of_a_run_that_ended_before_any_report() -> None:
    """A run shorter than a heartbeat never reports progress: the bar still ends full."""
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    with Progress(console=console, auto_refresh=False) as bar:
        show = RunProgress(bar, RunRecord({"id": 7, "algorithm": "linear", "state": "queued"}))
        metrics = {"accuracy": {"mean": 0.9, "std": 0.01, "folds": [0.89, 0.91]}}
        show(RunRecord({"id": 7, "algorithm": "linear", "state": "succeeded", "progress": {},
                        "metrics": metrics}))  # fmt: skip
        folds = bar.tasks[0]
        assert (folds.description, folds.completed, folds.total) == (
            "run 7 linear: succeeded",
            2,
            2,
        )


def request_errors(run: Run, wine: str) -> None:
    """Bad requests exit 1 with the server's message, queue nothing and show no traceback."""
    before = len(run_json(run, "run", "list"))
    for extra in ([], ["--param", "alpha=1"]):  # rejected by the server, or by the catalog
        result = run("run", "create", "--task", wine, "--algo", "nope", *extra, code=1)
        assert result.stderr.startswith("error: unknown algorithm 'nope'; valid: adaboost, ")
        assert "Traceback" not in result.output
    result = run(
        "run", "create", "--task", wine, "--algo", "random_forest", "-p", "n_estimators=lots",
        code=1,
    )  # fmt: skip
    assert "n_estimators" in result.stderr and "'lots'" in result.stderr
    result = run("run", "create", "--task", wine, "--algo", "linear", "-p", "oops", code=2)
    assert "'oops' is not NAME=VALUE" in result.stderr
    result = run("run", "create", "--task", "999999", "--algo", "linear", code=1)
    assert result.stderr == "error: task not found (not_found)\n"
    result = run("run", "create", "--task", "no-such-task", "--algo", "linear", code=1)
    assert result.stderr.startswith("error: task 'no-such-task' not found")
    assert len(run_json(run, "run", "list")) == before


def test_create_train_inspect_rank_and_delete(
    run: Run, admin_env: Server, demo: dict[str, str], tmp_path: Path
) -> None:
    wine = demo["wine"]
    lgbm = run_json(
        run, "run", "create", "--task", wine, "--algo", "lightgbm", "--name", "small",
        "--param", "n_estimators=20", "--param", "learning_rate=0.2", "-p", "max_depth=none",
    )  # fmt: skip
    # typed by the catalog: an int, a float and a null, not strings
    assert lgbm["state"] == "queued" and lgbm["name"] == "small"
    params = lgbm["params"]
    assert (params["n_estimators"], params["learning_rate"], params["max_depth"]) == (20, 0.2, None)
    limited = run_json(
        run, "run", "create", "--task", wine, "--algo", "dnn", "--memory-limit", "4096",
        "--divergence-retries", "2",
    )  # fmt: skip
    assert (limited["memory_limit_mb"], limited["divergence_retries"]) == (4096, 2)
    shown = run("run", "show", str(limited["id"])).stdout
    assert "4096 MB" in shown and "divergence retries" in shown
    run("run", "delete", str(limited["id"]), "--yes")
    out = run("run", "create", "--task", "wine", "--algo", "linear").stdout  # by name
    assert out.startswith("Queued run ") and f"(linear on task {wine}, wine)" in out
    assert "follow it with `openmaas run logs -f" in out
    queued = run_json(run, "run", "create", "--task", wine, "--algo", "linear")
    assert run("run", "cancel", str(queued["id"])).stdout == f"Cancelled run {queued['id']}\n"
    assert run_json(run, "run", "show", str(queued["id"]))["state"] == "cancelled"
    request_errors(run, wine)
    work(admin_env.platform)
    lid = str(lgbm["id"])

    shown = run("run", "show", lid).stdout
    for text in ("succeeded", "lightgbm", "accuracy (primary)", "log_loss", "small", "wine"):
        assert text in shown
    assert run_json(run, "run", "show", lid)["state"] == "succeeded"

    listed = run_json(run, "run", "list", "--task", wine)
    assert [r["algorithm"] for r in listed] == ["linear", "linear", "lightgbm"]  # newest first
    cancelled = run_json(run, "run", "list", "--algo", "linear", "--state", "cancelled")
    assert [r["id"] for r in cancelled] == [queued["id"]]
    assert "lightgbm" in run("run", "list").stdout

    board = run_json(run, "leaderboard", wine)
    assert (board["metric"], board["direction"], board["total"]) == ("accuracy", "maximize", 2)
    assert [e["rank"] for e in board["items"]] == [1, 2]
    scores = [e["score"] for e in board["items"]]
    assert scores == sorted(scores, reverse=True)
    assert {(e["contributor"], tuple(e["organisations"])) for e in board["items"]} == {
        ("admin", ("demo",))
    }
    filters = ("--algo", "linear", "--contributor", "admin", "--org", "demo", "--limit", "1")
    assert [e["algorithm"] for e in run_json(run, "leaderboard", wine, *filters)["items"]] == [
        "linear"
    ]
    assert run_json(run, "leaderboard", wine, "--contributor", "nobody")["items"] == []
    table = run("leaderboard", wine).stdout
    assert f"Task {wine} by accuracy (higher is better)" in table
    lgbm_row = next(line for line in table.splitlines() if "lightgbm" in line)
    assert "learning_rate=0.2, n_estimators=20" in lgbm_row  # only what differs from defaults
    assert "defaults" in next(line for line in table.splitlines() if "linear" in line)

    log = run("run", "logs", lid).stdout
    assert "fold 0 of 1 done" in log and " info " in log
    followed = run("run", "logs", lid, "-f")
    assert followed.stdout == log and followed.stderr == f"run {lid} succeeded\n"
    lines = run_json(run, "run", "logs", lid)
    assert len(lines) == len(log.splitlines()) and {"id", "level", "message"} <= set(lines[0])

    curves = run_json(run, "run", "metrics", lid)
    loss = next(k for k in curves if k.endswith("valid_loss"))
    assert curves[loss][0][0] == 1
    assert loss in run("run", "metrics", lid, "--key", loss).stdout

    files = {a["name"] for a in run_json(run, "run", "artifacts", lid)}
    assert {"predictions.parquet", "result.json", "curves.json"} <= files
    assert "predictions.parquet" in run("run", "artifacts", lid).stdout
    saved = run_json(run, "run", "download", lid, "predictions.parquet", str(tmp_path))
    assert saved["path"] == str(tmp_path / "predictions.parquet")
    assert len(pd.read_parquet(saved["path"])) > 0
    model = next(name for name in files if name.startswith("models/final/"))  # a nested name
    out = run("run", "download", lid, model, str(tmp_path / "model")).stdout
    assert out == f"Saved {model} of run {lid} to {tmp_path / 'model'}\n"

    assert run("run", "cancel", lid).stderr == f"run {lid} had already ended: succeeded\n"
    run("run", "delete", lid, "--yes")
    assert run("run", "show", lid, code=1).stderr == "error: run not found (not_found)\n"
    assert run_json(run, "leaderboard", wine)["total"] == 1


def test_create_wait_shows_metrics_or_fails_with_the_server_s_error(
    run: Run, demo: dict[str, str], background_worker: Worker
) -> None:
    out = run("run", "create", "--task", demo["wine"], "--algo", "linear", "--wait").stdout
    assert out.startswith("Run ") and " succeeded in " in out and ": accuracy " in out
    assert "accuracy (primary)" in out and "log_loss" in out  # the metrics table

    result = run(
        "run", "create", "--task", demo["diabetes"], "--algo", "dnn", "--json",
        "--param", "learning_rate=1000", "--param", "epochs=5", "--wait", code=1,
    )  # fmt: skip
    ended = json.loads(result.stdout)  # --json: the ended run on stdout, the error on stderr
    assert ended["state"] == "failed" and ended["params"]["learning_rate"] == 1000.0
    reason = "learning rate 1000 may be too high; lower it or set clip_gradient_norm"
    assert result.stderr == (
        f"error: run {ended['id']} (dnn) failed: {ended['error']} (run_failed)\n"
    )
    assert ended["error"].endswith(f"({reason})")


# Worker --------------------------------------------------------------------------------


def test_worker_rejects_unknown_kinds(run: Run, admin_env: Server) -> None:
    result = run("worker", "--kinds", "run,astrology", code=2)
    assert "unknown job kind 'astrology'; registered: " in result.stderr
    result = run("worker", "--module", "openmaas.no_such_module", code=2)
    assert "cannot import openmaas.no_such_module" in result.stderr


def test_worker_process_serves_runs_and_stops_on_sigterm(admin_env: Server, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "OPENMAAS_WORKER_PRELOAD": '["openmaas.jobs.runner"]',  # a light forkserver
        "OPENMAAS_WORKER_POLL_S": "0.1",
    }
    log = tmp_path / "worker.log"
    cmd = [
        sys.executable, "-c", "from openmaas.cli.main import app; app()",
        "worker", "--kinds", "run", "--concurrency", "1", "--worker-id", "cli-test",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for(lambda: "worker cli-test serving run" in log.read_text(), 30, interval=0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert "got Terminated; shutting down" in log.read_text()
