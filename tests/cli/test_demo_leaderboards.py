"""Acceptance: on every demo task, five algorithms (LightGBM and the DNN among them) reach
the leaderboard through the CLI, and the iterative ones have learning curves."""

from __future__ import annotations

import pytest

import openmaas.jobs.handlers.run  # noqa: F401  (registers the "run" job kind)
from openmaas.demo import DEMOS, load_demo
from openmaas.jobs.worker import Worker
from tests.cli import test_cli
from tests.cli.test_cli import Run, Server, run_json

home, run, server, admin_env = test_cli.home, test_cli.run, test_cli.server, test_cli.admin_env
pytestmark = pytest.mark.slow

# Small settings: the point is that every algorithm trains and ranks on every task type.
ALGORITHMS = {
    "linear": [],
    "random_forest": ["-p", "n_estimators=30"],
    "extra_trees": ["-p", "n_estimators=30"],
    "lightgbm": ["-p", "n_estimators=60"],
    "dnn": ["-p", "epochs=15", "-p", "width=32"],
}
ITERATIVE = {"lightgbm", "dnn"}


def test_five_algorithms_on_every_demo_task_through_the_cli(run: Run, admin_env: Server) -> None:
    load_demo(admin_env.platform)
    tasks = {
        t["name"]: t["id"] for t in run_json(run, "task", "list", "--project", "demo/benchmarks")
    }
    assert set(tasks) == set(DEMOS)
    created: dict[tuple[str, str], int] = {}
    for name, task_id in tasks.items():
        for algo, params in ALGORITHMS.items():
            out = run_json(run, "run", "create", "--task", str(task_id), "--algo", algo, *params)
            created[name, algo] = out["id"]
    Worker(admin_env.platform, kinds=["run"], concurrency=1, poll_interval=0.05).run_until_idle(
        timeout=900
    )
    for name, task_id in tasks.items():
        board = run_json(run, "leaderboard", str(task_id))
        ranked = {e["algorithm"] for e in board["items"]}
        assert ranked == set(ALGORITHMS), (name, board)
        scores = [e["score"] for e in board["items"]]
        assert scores == sorted(scores, reverse=board["direction"] == "maximize")
        for algo in ITERATIVE:
            curves = run_json(run, "run", "metrics", str(created[name, algo]))
            assert curves and all(len(points) > 0 for points in curves.values()), (name, algo)
    table = run("leaderboard", str(tasks["breast_cancer"])).stdout
    assert "lightgbm" in table and "dnn" in table
