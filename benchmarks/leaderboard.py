"""Leaderboard benchmark: 100,000 runs on one task, pages timed through the API.

Seeds one task with N succeeded runs (by 50 contributors in 5 organisations,
8 algorithms) straight into the metadata store, starts the API server, and
times through HTTP: the top 100 by the task metric, page 10, a filter by
algorithm and a filter by organisation. Reports p50/p95 per query, on SQLite
and (when ``--postgres URL`` is given) PostgreSQL. Target: p95 < 200 ms.

    python benchmarks/leaderboard.py [--runs 100000] [--requests 50] [--postgres URL]

For comparison (../shared/bench/metadata/RESULTS.md, same kind of machine):
MLflow's tracking server took 21.5 minutes for one top-100 request on its
default SQLite store at 100,000 runs, and p95 0.47-1.07 s on PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from sqlalchemy import insert, text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ALGOS = ["linear", "random_forest", "extra_trees", "lightgbm", "dnn", "fm", "bagging", "adaboost"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(home: Path, database_url: str | None, n_runs: int) -> tuple[str, int]:
    """A platform with one demo-like task and ``n_runs`` succeeded runs; (token, task id)."""
    from openmaas.config import Settings
    from openmaas.domain import orgs, projects, tasks
    from openmaas.domain.context import Platform
    from openmaas.domain.datasets import create as create_dataset
    from openmaas.domain.identity import _insert_user, bootstrap_admin, principal_for_user
    from openmaas.ml.tasks import TaskSpec
    from openmaas.store.metadata.tables import Membership, Organization, Run

    settings = Settings(home=home, database_url=database_url, argon2_time_cost=1,
                        argon2_memory_kib=64)  # fmt: skip
    platform = Platform(settings)
    if database_url and database_url.startswith("postgresql"):
        with platform.store.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    platform.prepare()
    boot = bootstrap_admin(platform)
    admin = platform.as_(principal_for_user(platform, boot.user.id))
    orgs.create(admin, "bench")
    admin = platform.as_(principal_for_user(platform, boot.user.id))
    project = projects.create(admin, "bench", "leaderboard", visibility="public")
    frame = pd.DataFrame({"x": np.arange(200.0), "y": ["a", "b"] * 100})
    path = home / "d.parquet"
    frame.to_parquet(path)
    view, _ = create_dataset(admin, project.id, "toy", path, "parquet")
    spec = TaskSpec.model_validate({"type": "binary", "target_columns": ["y"]})
    task = tasks.create(admin, project.id, "toy", view.dataset.id, spec).task

    rng = random.Random(0)
    user_ids: list[int] = []
    with platform.store.write() as s:
        org_ids = []
        for i in range(5):
            o = Organization(name=f"org{i}")
            s.add(o)
            s.flush()
            org_ids.append(o.id)
        for i in range(50):
            u = _insert_user(admin, f"user{i}", None, None, "", False, session=s)
            s.add(Membership(org_id=org_ids[i % 5], user_id=u.id, role="contributor"))
            user_ids.append(u.id)
    now = datetime.now(UTC)
    batch = []
    for i in range(n_runs):
        score = rng.random()
        batch.append(
            {
                "project_id": project.id, "task_id": task.id, "kind": "platform",
                "name": "", "algorithm": ALGOS[i % len(ALGOS)],
                "params": {"n_estimators": rng.randint(10, 500), "learning_rate": rng.random()},
                "seed": i, "state": "succeeded", "metric": "roc_auc", "score": score,
                "score_std": rng.random() / 20, "metrics": {"roc_auc": {"mean": score}},
                "environment": {}, "wall_time_s": rng.random() * 60,
                "created_by": user_ids[i % len(user_ids)], "created_at": now,
            }
        )  # fmt: skip
        if len(batch) == 10_000:
            with platform.store.write() as s:
                s.execute(insert(Run), batch)
            batch = []
    if batch:
        with platform.store.write() as s:
            s.execute(insert(Run), batch)
    # What autovacuum / a periodic ANALYZE would have done after a bulk load: fresh statistics
    # (and, on PostgreSQL, a visibility map for index-only counts).
    if platform.store.dialect == "postgresql":
        with platform.store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("VACUUM ANALYZE runs")
            )
    else:
        with platform.store.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    platform.store.dispose()
    assert boot.token is not None
    return boot.token, task.id


def serve(home: Path, database_url: str | None) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "OPENMAAS_HOME": str(home)}
    if database_url:
        env["OPENMAAS_DATABASE_URL"] = database_url
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "openmaas.api.app:app_from_env",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def time_queries(url: str, token: str, task_id: int, n: int) -> dict[str, list[float]]:
    queries = {
        "top 100": {"limit": 100},
        "page 10": {"limit": 100, "offset": 900},
        "algorithm=lightgbm": {"limit": 100, "algorithm": "lightgbm"},
        "org=org3": {"limit": 100, "org": "org3"},
    }
    out: dict[str, list[float]] = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
        path = f"/api/v1/tasks/{task_id}/leaderboard"
        c.get(path, params={"limit": 1}).raise_for_status()  # warm up
        for label, params in queries.items():
            times = []
            for _ in range(n):
                t = time.perf_counter()
                r = c.get(path, params=params)
                times.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
                assert len(r.json()["items"]) == 100
            out[label] = times
    return out


def p95(xs: list[float]) -> float:
    return float(np.percentile(xs, 95))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--postgres", default=os.environ.get("OPENMAAS_BENCH_DATABASE_URL"))
    args = ap.parse_args()
    backends: list[tuple[str, str | None]] = [("SQLite", None)]
    if args.postgres:
        backends.append(("PostgreSQL", args.postgres))
    rows = []
    for label, url in backends:
        home = Path(tempfile.mkdtemp(prefix="openmaas-lb-"))
        try:
            t0 = time.perf_counter()
            token, task_id = seed(home, url, args.runs)
            seeded = time.perf_counter() - t0
            proc, base = serve(home, url)
            try:
                timings = time_queries(base, token, task_id, args.requests)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        for query, times in timings.items():
            rows.append((label, query, statistics.median(times), p95(times), seeded))
    lines = [
        f"# Leaderboard benchmark ({date.today().isoformat()})",
        "",
        f"{args.runs:,} succeeded runs on one task, {args.requests} requests per query through "
        "the HTTP API (uvicorn, one process), 100 entries per page.",
        "",
        "| store | query | p50 ms | p95 ms | target p95 < 200 ms |",
        "|---|---|---|---|---|",
        *[
            f"| {b} | {q} | {p50:.1f} | {p:.1f} | {'MET' if p < 200 else 'NOT MET'} |"
            for b, q, p50, p, _ in rows
        ],
        "",
        "Measured elsewhere (../shared/bench/metadata/RESULTS.md): MLflow's tracking server, "
        "100,000 runs, top-100 by a metric: 21.5 minutes for one request on SQLite; "
        "p95 0.47-1.07 s on PostgreSQL.",
    ]
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "leaderboard.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
