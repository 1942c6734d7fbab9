"""Platform overhead benchmark: the same runs through the platform and in plain scripts.

Starts a platform (temporary home, SQLite) and one worker process
(``python -m openmaas.jobs.worker_main``, default settings: the heavy
forkserver preload, 0.2 s idle poll), then times each configuration three ways,
interleaved, ``--repeats`` times:

- **platform**: ``runs.create`` (the domain call behind ``POST /runs``) until
  the job is seen ``succeeded``: queueing, the worker's claim, the forked
  attempt reading the dataset and the splits from the stores, the engine,
  per-epoch checkpoints, storing every artifact and the run row;
- **engine**: the same ``execute_run`` call (same data, splits, parameters and
  seed) in this process, reading the Parquet file first: what the platform
  adds around the engine;
- **plain**: the same fits written against LightGBM or torch directly, no
  OpenMaaS: for each of the task's inner folds a fit on its training part and
  a prediction of its validation part, then a refit on the outer training part,
  a prediction of the test part and its ROC AUC (the work a run does).

Configurations: LightGBM and a DNN, tiny (breast cancer, 569 rows) and about a
minute long (generated data). Targets: platform - plain < 2 s on the tiny
runs and < 10% on the minute-long ones.

    python benchmarks/overhead.py [--repeats 2] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
POLL_S = 0.05


@dataclass
class Config:
    label: str
    size: str  # "tiny" or "long"
    algorithm: str
    dataset: str
    params: dict[str, Any]
    times: dict[str, list[float]] = field(default_factory=dict)
    parts: list[dict[str, float]] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=dict)


def configs(scale: float) -> list[Config]:
    lgb_rounds = max(10, round(800 * scale))
    dnn_epochs = max(1, round(10 * scale))
    return [
        Config("LightGBM, 10 rounds", "tiny", "lightgbm", "breast_cancer",
               {"n_estimators": 10, "early_stopping_rounds": None}),
        Config("DNN, 10 epochs", "tiny", "dnn", "breast_cancer",
               {"epochs": 10, "patience": 0, "batch_size": 128}),
        Config(f"LightGBM, {lgb_rounds} rounds", "long", "lightgbm", "gen_lightgbm",
               {"n_estimators": lgb_rounds, "num_leaves": 31, "learning_rate": 0.05,
                "early_stopping_rounds": None}),
        Config(f"DNN, {dnn_epochs} epochs", "long", "dnn", "gen_dnn",
               {"epochs": dnn_epochs, "patience": 0, "batch_size": 128, "width": 128}),
    ]  # fmt: skip


def datasets() -> dict[str, pd.DataFrame]:
    """breast_cancer and two generated binary tables; the target ``y`` is 0/1."""
    from sklearn.datasets import load_breast_cancer, make_classification

    bc = load_breast_cancer(as_frame=True).frame
    bc.columns = [f"x{i}" for i in range(bc.shape[1] - 1)] + ["y"]
    out = {"breast_cancer": bc}
    for name, (n, d) in {"gen_lightgbm": (60_000, 20), "gen_dnn": (60_000, 20)}.items():
        X, y = make_classification(n_samples=n, n_features=d, n_informative=d // 2,
                                   flip_y=0.05, random_state=0)  # fmt: skip
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(d)])
        frame["y"] = y
        out[name] = frame
    return out


# -- the platform --------------------------------------------------------------------------


@dataclass
class Bench:
    """A prepared platform: the admin context, task ids and the data files."""

    platform: Any
    admin: Any
    tasks: dict[str, int]
    files: dict[str, Path]
    home: Path


def prepare(home: Path, frames: dict[str, pd.DataFrame]) -> Bench:
    from openmaas.config import Settings
    from openmaas.domain import datasets as datasets_service
    from openmaas.domain import orgs, projects
    from openmaas.domain import tasks as tasks_service
    from openmaas.domain.context import Platform
    from openmaas.domain.identity import bootstrap_admin, principal_for_user
    from openmaas.ml.tasks import TaskSpec

    settings = Settings(home=home, argon2_time_cost=1, argon2_memory_kib=64)
    platform = Platform(settings)
    platform.prepare()
    boot = bootstrap_admin(platform)
    admin = platform.as_(principal_for_user(platform, boot.user.id))
    orgs.create(admin, "bench")
    admin = platform.as_(principal_for_user(platform, boot.user.id))
    project = projects.create(admin, "bench", "overhead")
    task_ids, files = {}, {}
    for name, frame in frames.items():
        path = home / f"{name}.parquet"
        frame.to_parquet(path)
        view, version = datasets_service.create(admin, project.id, name, path, "parquet")
        spec = TaskSpec.model_validate({"type": "binary", "target_columns": ["y"]})
        task = tasks_service.create(admin, project.id, name, view.dataset.id, spec).task
        task_ids[name] = task.id
        files[name] = datasets_service.materialize(admin, version.digest, home / f"{name}.v1")
    return Bench(platform, admin, task_ids, files, home)


@contextlib.contextmanager
def worker(home: Path, preload: list[str] | None) -> Iterator[subprocess.Popen[bytes]]:
    """One worker process serving runs (``python -m openmaas.jobs.worker_main``), then stopped.

    It runs in its own session; on exit its whole process group (the worker, its
    forkserver and attempts) gets SIGTERM, then SIGKILL if it lingers.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENMAAS_")}
    env["OPENMAAS_HOME"] = str(home)
    cmd = [sys.executable, "-m", "openmaas.jobs.worker_main", "--worker-id", "bench",
           "--kinds", "run"]  # fmt: skip
    if preload is not None:
        cmd += ["--preload", ",".join(preload)]
    with (home / "worker.log").open("ab") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def through_platform(bench: Bench, cfg: Config, seed: int) -> tuple[float, dict[str, float], float]:
    """Seconds from submit to ``succeeded``, the breakdown, and the run's score."""
    from openmaas.domain import runs
    from openmaas.store.metadata.tables import Job, Run

    start = time.perf_counter()
    view = runs.create(bench.admin, bench.tasks[cfg.dataset], cfg.algorithm, cfg.params, seed=seed)
    job_id = view.run.job_id
    while True:
        with bench.platform.store.read() as s:
            job = s.get(Job, job_id)
            assert job is not None
            state = job.state
        if state in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(POLL_S)
    seconds = time.perf_counter() - start
    with bench.platform.store.read() as s:
        job = s.get(Job, job_id)
        run = s.get(Run, view.run.id)
        assert job is not None and run is not None
        if state != "succeeded":
            raise RuntimeError(f"run {run.id} {state}: {job.error}")
        assert job.started_at is not None and job.finished_at is not None
        engine = float(run.wall_time_s or 0.0)
        parts = {
            "queued": (job.started_at - job.created_at).total_seconds(),
            "engine": engine,
            "around": (job.finished_at - job.started_at).total_seconds() - engine,
        }
        score = float(run.score or math.nan)
    return seconds, parts, score


def through_engine(bench: Bench, cfg: Config, seed: int, out: Path) -> tuple[float, float]:
    """``execute_run`` in this process on the same data, splits, parameters and seed."""
    from openmaas.domain import tasks as tasks_service
    from openmaas.ml.data import ColumnSchema
    from openmaas.ml.engine import execute_run
    from openmaas.ml.tasks import TaskSpec

    view = tasks_service.get(bench.admin, bench.tasks[cfg.dataset])
    splits = tasks_service.load_splits(bench.admin, view.task.id)
    spec = TaskSpec.model_validate(view.task.spec)
    columns = [ColumnSchema.from_dict(c) for c in view.dataset_version.columns]
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    frame = pd.read_parquet(bench.files[cfg.dataset])
    result = execute_run(frame, columns, spec, splits, cfg.algorithm, cfg.params, seed, out)
    return time.perf_counter() - start, result.score


# -- plain scripts ----------------------------------------------------------------------------


def plain(bench: Bench, cfg: Config, seed: int) -> tuple[float, float]:
    """The run's fits written directly against LightGBM or torch; (seconds, test ROC AUC)."""
    from openmaas.domain import tasks as tasks_service

    splits = tasks_service.load_splits(bench.admin, bench.tasks[cfg.dataset])
    parts = [splits.inner_train_valid(0, i) for i in range(splits.n_inner)]
    train, test = splits.train_test(0)
    fit = plain_lightgbm if cfg.algorithm == "lightgbm" else plain_dnn
    start = time.perf_counter()
    frame = pd.read_parquet(bench.files[cfg.dataset])
    X = frame.drop(columns="y").to_numpy(np.float64)
    y = frame["y"].to_numpy()
    for rows, valid in parts:
        fit(cfg.params, X[rows], y[rows], X[valid], seed)
    score = roc_auc(y[test], fit(cfg.params, X[train], y[train], X[test], seed))
    return time.perf_counter() - start, score


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score))


def plain_lightgbm(
    params: dict[str, Any], X: np.ndarray, y: np.ndarray, X_pred: np.ndarray, seed: int
) -> np.ndarray:
    import lightgbm as lgb

    booster_params = {
        "objective": "binary", "learning_rate": params.get("learning_rate", 0.1),
        "num_leaves": params.get("num_leaves", 31), "num_threads": 1, "seed": seed,
        "deterministic": True, "force_col_wise": True, "verbosity": -1,
    }  # fmt: skip
    booster = lgb.train(booster_params, lgb.Dataset(X, y), num_boost_round=params["n_estimators"])
    # the booster lgb.train returns is reloaded from its model text and forgets
    # num_threads: without it, predict would use every core (the engine uses one)
    return np.asarray(booster.predict(X_pred, num_threads=1))


def plain_dnn(
    params: dict[str, Any], X: np.ndarray, y: np.ndarray, X_pred: np.ndarray, seed: int
) -> np.ndarray:
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    mean, std = X.mean(axis=0), X.std(axis=0) + 1e-12
    xs = torch.from_numpy(((X - mean) / std).astype(np.float32))
    ys = torch.from_numpy(y.astype(np.float32))
    width, layers, dim = params.get("width", 64), [], X.shape[1]
    for _ in range(params.get("depth", 2)):
        layers += [nn.Linear(dim, width), nn.ReLU()]
        dim = width
    model = nn.Sequential(*layers, nn.Linear(dim, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    batch = params.get("batch_size", 128)
    for _ in range(params["epochs"]):
        order = torch.randperm(len(xs), generator=generator)
        for start in range(0, len(xs), batch):
            rows = order[start : start + batch]
            loss = nn.functional.binary_cross_entropy_with_logits(model(xs[rows])[:, 0], ys[rows])
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
    with torch.inference_mode():
        pred = model(torch.from_numpy(((X_pred - mean) / std).astype(np.float32)))[:, 0]
    return pred.numpy()


# -- report -----------------------------------------------------------------------------------


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else math.nan


def report(
    cfgs: list[Config], args: argparse.Namespace, cold: dict[str, float], wall_s: float
) -> str:
    rows = []
    for c in cfgs:
        p, e, q = (median(c.times[k]) for k in ("platform", "engine", "plain"))
        parts = {k: median([x[k] for x in c.parts]) for k in ("queued", "engine", "around")}
        rows.append(
            f"| {c.label} ({c.dataset}) | {p:.2f} ({_each(c.times['platform'])}) | {e:.2f} | "
            f"{q:.2f} ({_each(c.times['plain'])}) | {_over(c, p, q)} | "
            f"{p - e:+.2f} s ({100 * (p - e) / e:+.0f}%) | "
            f"{parts['queued']:.2f} / {parts['engine']:.2f} / {parts['around']:.2f} |"
        )
    extra = [c for c in cfgs if "preloaded" in c.times]
    rows_b = [
        f"| {c.label} ({c.dataset}) | {median(c.times['preloaded']):.2f} "
        f"({_each(c.times['preloaded'])}) | {median(c.times['plain_b']):.2f} | "
        f"{_over(c, median(c.times['preloaded']), median(c.times['plain_b']))} |"
        for c in extra
    ]
    scores = "; ".join(
        f"{c.label} ({c.dataset}): "
        + ", ".join(f"{k} {median(v):.4f}" for k, v in c.scores.items())
        for c in cfgs
    )
    lines = [
        f"# Platform overhead benchmark ({date.today().isoformat()})",
        "",
        "`python benchmarks/overhead.py` "
        f"(`--repeats {args.repeats} --scale {args.scale}`). Wall seconds, median of "
        f"{args.repeats} interleaved repeats (each value in brackets). The machine has 2 "
        "cores shared with other jobs, so absolute times move by up to ±35% between runs; "
        "the columns of a row were measured side by side. Every run is what the task's "
        "protocol asks (holdout 0.2 + 5 inner folds: 5 inner fits with predictions, a refit, "
        "test predictions and metrics), single-threaded.",
        "",
        "- **platform**: `runs.create` (the domain call behind `POST /runs`) until the job is "
        "seen `succeeded`, one worker process with default settings (the default forkserver "
        "preload, 0.2 s idle poll), SQLite, local artifact store;",
        "- **engine**: the same `execute_run` call in this process, warm (imports done), "
        "reading the Parquet file included;",
        "- **plain**: the same fits, predictions and test ROC AUC written directly against "
        "LightGBM / torch.",
        "",
        "| configuration | platform s | engine s | plain s | platform - plain (target) "
        "| platform - engine | in the worker: queued / engine / rest s |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Reading the columns: *engine - plain* is what the engine adds to the bare "
        "libraries (preprocessing pipelines, the learning curves: training and validation "
        "loss per epoch, and per boosting round up to 50 rounds, about 50 points beyond, "
        "saving every fold's model, predictions files; LightGBM's out-of-fold predictions "
        "are the validation scores it kept up to date while training, bit for bit what "
        "predicting gives, where the plain script predicts again); *engine in the worker - engine "
        "here* is what the job adds inside the engine's run (checkpoints: LightGBM's model "
        "text every 50 rounds, torch's state every epoch, but at most one every "
        "`job_checkpoint_interval_s` = 5 s, each a blob and a database transaction; with "
        "several outer folds, each finished fold's payload); "
        "*queued* is the wait for the worker's poll, *rest* the attempt's start, reading "
        "the data and splits, storing the artifacts and the run row. Without early "
        "stopping (as here) the engine keeps every boosting round, so its refits train as "
        "many rounds as the plain script's.",
        "",
        f"First run after the worker started (cold forkserver): {cold['default']:.1f} s.",
    ]
    if rows_b:
        lines += [
            "",
            f"Tiny runs again on a worker whose forkserver also preloads `{args.extra_preload}`:",
            "",
            "| configuration | platform s | plain s | platform - plain (target) |",
            "|---|---|---|---|",
            *rows_b,
            "",
            f"First run after that worker started: {cold['preloaded']:.1f} s.",
        ]
    lines += [
        "",
        f"The same work was done (test ROC AUC, medians): {scores}.",
        "",
        f"Whole benchmark: {wall_s:.0f} s.",
    ]
    return "\n".join(lines)


def _each(xs: list[float]) -> str:
    return ", ".join(f"{x:.1f}" for x in xs)


def _over(c: Config, platform: float, plain: float) -> str:
    over = platform - plain
    met = over < 2.0 if c.size == "tiny" else over / plain < 0.10
    target = "< 2 s" if c.size == "tiny" else "< 10%"
    verdict = "MET" if met else "NOT MET"
    return f"{over:+.2f} s ({100 * over / plain:+.0f}%; {target}: {verdict})"


def measure(bench: Bench, cfgs: list[Config], modes: tuple[str, ...], repeats: int) -> None:
    """Every configuration in every mode, interleaved, ``repeats`` times."""
    for rep in range(repeats):
        for c in cfgs:
            for mode in modes:
                if mode == "engine" and c.size == "long" and rep > 0:
                    continue  # once is enough to split the overhead; keeps the benchmark short
                if mode in ("platform", "preloaded"):
                    seconds, parts, score = through_platform(bench, c, seed=rep)
                    if mode == "platform":
                        c.parts.append(parts)
                elif mode == "engine":
                    seconds, score = through_engine(bench, c, rep, bench.home / "engine-out")
                else:
                    seconds, score = plain(bench, c, rep)
                c.times.setdefault(mode, []).append(seconds)
                c.scores.setdefault(mode.removesuffix("_b"), []).append(score)
                print(f"[{rep}] {c.label:24} {mode:9} {seconds:7.2f} s  auc {score:.4f}",
                      flush=True)  # fmt: skip


def warm_up(bench: Bench, cfgs: list[Config]) -> None:
    """One unmeasured engine and plain run per algorithm: this process's imports."""
    for c in cfgs:
        if c.size == "tiny":
            through_engine(bench, c, 0, bench.home / "engine-out")
            plain(bench, c, 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--scale", type=float, default=1.0, help="length of the long runs")
    ap.add_argument(
        "--extra-preload", default="",
        help="then time the tiny runs on a worker that also preloads these ('' to skip)",
    )  # fmt: skip
    args = ap.parse_args()
    wall = time.perf_counter()
    cfgs = configs(args.scale)
    home = Path(tempfile.mkdtemp(prefix="openmaas-overhead-"))
    cold: dict[str, float] = {}
    try:
        bench = prepare(home, datasets())
        warm_up(bench, cfgs)
        with worker(home, None):
            cold["default"] = through_platform(bench, cfgs[0], seed=99)[0]
            measure(bench, cfgs, ("platform", "engine", "plain"), args.repeats)
        if args.extra_preload:
            from openmaas.config import Settings

            preload = [*Settings().worker_preload, *args.extra_preload.split(",")]
            tiny = [c for c in cfgs if c.size == "tiny"]
            with worker(home, preload):
                cold["preloaded"] = through_platform(bench, cfgs[0], seed=99)[0]
                measure(bench, tiny, ("preloaded", "plain_b"), args.repeats)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    table = report(cfgs, args, cold, time.perf_counter() - wall)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "overhead.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
