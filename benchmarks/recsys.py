"""Recommendation benchmark: NCF on RecBole's MovieLens-100K split, next to RecBole 1.2.1.

The protocol is ../shared/bench/recsys/ (RecBole's defaults): MovieLens-100K as
shipped in the recbole wheel, every rating an implicit interaction, split RS
[0.8, 0.1, 0.1] per user in random order with seed 2020, full ranking over all
items with the user's earlier interactions masked, metrics @10. In one run:

1. RecBole's virtual environment under ``benchmarks/.work/venv_rec`` (made once
   as ``setup_venv.sh`` makes it: torch 2.13.0 first, recbole 1.2.1, pandas<3,
   the shared patch). ``_recbole_export.py`` runs there: RecBole's own data
   pipeline makes the split and writes (user, item, part) rows. The data stays
   under ``benchmarks/.work`` (git-ignored).
2. The split goes into OpenMaaS (temporary home, SQLite) as two datasets and
   two recommendation tasks with predefined outer splits (2 inner folds):
   ``ml-100k-valid`` (RecBole's training and validation parts, the latter as
   its test part) and ``ml-100k`` (all rows; training = RecBole's training +
   validation parts, test = RecBole's test part). A fixed popularity ranking
   scored by the engine's evaluation must get what RecBole's evaluator gives
   it (``_recbole_export.py`` prints that): a check of the split, the masking
   and the metrics.
3. Selection on the validation part only: every candidate below runs
   (``execute_run``) on ``ml-100k-valid``; per family the best validation
   NDCG@10 wins, and so does the best overall ("our best configuration").
4. Test, two ways, each run in its own process (time, peak RSS):
   - *RecBole's protocol*: the selected run's model, trained on RecBole's
     training part only, scored on the test part by the engine's evaluation
     (masking training + validation interactions), as RecBole scores its
     best-validation checkpoint;
   - *the platform's protocol*: the selected configuration run on ``ml-100k``,
     whose refit trains on training + validation parts (12% more interactions).
5. With ``--recbole``, RecBole's BPR and NeuMF (``run_recbole.py``) run again
   in the same run, so times compare under the same load; otherwise its figures
   come from ``results.jsonl``, measured elsewhere on this kind of machine.

"train s" is every fit of a run (2 inner fits + the refit), the counterpart of
RecBole's ``trainer.fit`` (its epochs with their validation). Our fits are
single-threaded (the engine's default); RecBole used torch's 2 threads.

    python benchmarks/recsys.py [--recbole] [--seed 0] [--lock /tmp/bench.lock]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / ".work"
VENV = WORK / "venv_rec"
SHARED = ROOT.parent / "shared" / "bench" / "recsys"
SPLIT_CSV = WORK / "ml100k_split.csv"
METRICS = ["ndcg@10", "recall@10", "hit_rate@10", "mrr@10", "precision@10"]
RECBOLE_KEYS = {"ndcg@10": "ndcg@10", "recall@10": "recall@10", "hit_rate@10": "hit@10",
                "mrr@10": "mrr@10", "precision@10": "precision@10"}  # fmt: skip
_NEUMF = {"model": "neumf", "loss": "bce", "n_factors": 64, "depth": 2, "width": 64,
          "dropout": 0.1, "n_negatives": 1, "learning_rate": 1e-3, "batch_size": 2048,
          "patience": 0}  # fmt: skip
CANDIDATES: dict[str, list[dict[str, Any]]] = {
    # RecBole's NeuMF settings: Adam 1e-3, batch 2048, one negative, 64-d embeddings,
    # dropout 0.1 (an MLP of 64-64 where RecBole has 128-64); RecBole's early stopping
    # kept epoch 21.
    "NeuMF, RecBole's settings": [{**_NEUMF, "epochs": 22}],
    # Tuned beforehand on the validation part: learning rate, weight decay, negatives.
    "NeuMF, tuned": [{**_NEUMF, "learning_rate": 2e-3, "weight_decay": 1e-5,
                      "n_negatives": 2, "epochs": 21}],
    "BPR-MF, tuned": [
        {"model": "gmf", "loss": "bpr", "n_factors": 64, "learning_rate": 5e-3,
         "weight_decay": 1e-5, "batch_size": 2048, "patience": 0, "n_negatives": n,
         "epochs": e}
        for n, e in ((4, 18), (8, 15))
    ],
    # BPR's own regularisation (embedding_l2: the embedding rows each batch uses) in
    # place of weight decay, and a cosine schedule. Tuned beforehand on the validation
    # part (RecBole's training part -> validation part, seeds 0 and 7): embedding_l2 in
    # {5e-3, 7e-3, 1e-2, 1.5e-2, 2e-2, 3e-2}, learning rate, epochs, 8 or 16 negatives,
    # 64 or 128 factors.
    "BPR-MF, embedding L2": [
        {"model": "gmf", "loss": "bpr", "n_factors": 64, "embedding_l2": 1e-2,
         "weight_decay": 0.0, "lr_schedule": "cosine", "learning_rate": lr,
         "batch_size": 2048, "patience": 0, "n_negatives": 8, "epochs": e}
        for lr, e in ((2e-2, 20), (1e-2, 30))
    ],
}  # fmt: skip
"""Configurations per family, all of the catalog's ``ncf`` (GMF + bpr loss = BPR-MF).

Each family's best on the validation part is scored on the test part. "Our
NeuMF" is the better NeuMF family on validation, "our best configuration" the
best of all; those two also run with the platform's protocol."""


# -- RecBole's side -------------------------------------------------------------------------


def ensure_venv() -> Path:
    """RecBole's venv, made once like ../shared/bench/recsys/setup_venv.sh (not timed)."""
    python = VENV / "bin" / "python"
    ready = VENV / ".ready"
    if ready.exists():
        return python
    shutil.rmtree(VENV, ignore_errors=True)
    WORK.mkdir(parents=True, exist_ok=True)
    base = shutil.which("python3") or sys.executable
    print(f"making RecBole's venv in {VENV} (once) ...", flush=True)
    quiet = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], **quiet)  # the local CPU build, first
    subprocess.run([*pip, "recbole==1.2.1", "pandas<3"], **quiet)
    site = subprocess.run(
        [str(python), "-c", "import site; print(site.getsitepackages()[0])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    with (SHARED / "recbole-1.2.1-numpy2-torch2.6.patch").open("rb") as patch:
        subprocess.run(["patch", "-d", site, "-p1"], stdin=patch, **quiet)
    ready.write_text("torch==2.13.0 recbole==1.2.1 pandas<3 + shared patch\n")
    return python


def export_split(python: Path) -> dict[str, Any]:
    """RecBole's split of ml-100k as (user, item, part) rows, made by RecBole's pipeline."""
    out = subprocess.run(
        [str(python), str(ROOT / "benchmarks" / "_recbole_export.py"), str(SPLIT_CSV)],
        cwd=WORK, check=True, capture_output=True, text=True,
    )  # fmt: skip
    info: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return info


def locked(command: list[str], lock: Path | None) -> list[str]:
    """``command`` holding ``lock`` (``flock``) while it runs, so no two timed runs overlap.

    Each timed process takes the lock itself, so a lock is never held for the
    whole benchmark and other benchmarks on the machine can run between our runs.
    """
    return command if lock is None else ["flock", str(lock), *command]


def run_recbole(python: Path, model: str, threads: int, lock: Path | None) -> dict[str, Any]:
    """``run_recbole.py MODEL`` from the shared protocol, in RecBole's venv.

    ``threads`` (``OMP_NUM_THREADS``): the reference ran with torch's default of 2
    on an otherwise idle machine; on a shared one two spinning threads slow down
    far more than one, so the same-load comparison uses 1 like our runs.
    """
    out = WORK / "recbole_results.jsonl"
    out.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    subprocess.run(
        locked([str(python), str(SHARED / "run_recbole.py"), model, "--out", str(out)], lock),
        cwd=WORK, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    record: dict[str, Any] = json.loads(out.read_text().splitlines()[-1])
    return record


def recbole_reference() -> dict[str, dict[str, Any]]:
    records = [json.loads(line) for line in (SHARED / "results.jsonl").read_text().splitlines()]
    return {r["model"]: r for r in records}


# -- OpenMaaS side --------------------------------------------------------------------------


@dataclass
class TaskFiles:
    """What a run process reads: a task's data, columns, spec and stored splits."""

    frame: Path
    columns: Path
    spec: Path
    splits: Path

    def load(self) -> tuple[pd.DataFrame, list[Any], Any, Any]:
        from openmaas.ml.data import ColumnSchema
        from openmaas.ml.splits import Splits
        from openmaas.ml.tasks import TaskSpec

        columns = [ColumnSchema.from_dict(c) for c in json.loads(self.columns.read_text())]
        spec = TaskSpec.model_validate_json(self.spec.read_text())
        return pd.read_parquet(self.frame), columns, spec, Splits.from_parquet(self.splits)


def task_files(paths: dict[str, str]) -> TaskFiles:
    return TaskFiles(**{k: Path(v) for k, v in paths.items()})


def task_spec() -> dict[str, Any]:
    return {
        "type": "recommendation",
        "recommendation": {"user_column": "user", "item_column": "item", "implicit": True},
        "metrics": METRICS,
        "protocol": {"outer": {"method": "predefined_column", "column": "fold"}, "inner_folds": 2},
    }


def import_split(home: Path, split: pd.DataFrame) -> dict[str, TaskFiles]:
    """Both datasets and tasks in a fresh platform; the files a run process reads."""
    from openmaas.config import Settings
    from openmaas.domain import datasets, orgs, projects, tasks
    from openmaas.domain.context import Platform
    from openmaas.domain.identity import bootstrap_admin, principal_for_user
    from openmaas.ml.tasks import TaskSpec

    platform = Platform(Settings(home=home, argon2_time_cost=1, argon2_memory_kib=64))
    platform.prepare()
    boot = bootstrap_admin(platform)
    admin = platform.as_(principal_for_user(platform, boot.user.id))
    orgs.create(admin, "bench")
    admin = platform.as_(principal_for_user(platform, boot.user.id))
    project = projects.create(admin, "bench", "recsys")
    frames = {
        "ml-100k": split.assign(fold=np.where(split["part"] == "test", "test", "train")),
        "ml-100k-valid": split[split["part"] != "test"].assign(
            fold=lambda f: np.where(f["part"] == "valid", "test", "train")
        ),
    }
    out = {}
    for name, frame in frames.items():
        path = home / f"{name}.parquet"
        frame[["user", "item", "fold"]].to_parquet(path, index=False)
        view, version = datasets.create(admin, project.id, name, path, "parquet")
        spec = TaskSpec.model_validate(task_spec())
        task = tasks.create(admin, project.id, name, view.dataset.id, spec).task
        files = TaskFiles(home / f"{name}.data.parquet", home / f"{name}.columns.json",
                          home / f"{name}.spec.json", home / f"{name}.splits.parquet")  # fmt: skip
        shutil.copyfile(datasets.materialize(admin, version.digest, files.frame), files.frame)
        files.columns.write_text(json.dumps(version.columns))
        files.spec.write_text(json.dumps(task.spec))
        files.splits.write_bytes(tasks.load_splits(admin, task.id).to_parquet_bytes())
        out[name] = files
    platform.store.dispose()
    return out


class Popularity:
    """A fixed ranking: items by their count in the training part, ties broken by id."""

    def __init__(self, items: np.ndarray, counts: np.ndarray) -> None:
        self.items_ = items
        self.scores = counts + items.astype(np.float64) * 1e-6

    def score_matrix(self, users: Any) -> np.ndarray:
        return np.tile(self.scores, (len(users), 1))


def popularity_check(tasks: dict[str, TaskFiles]) -> dict[str, dict[str, float | None]]:
    """The ranking ``_recbole_export.py`` scored with RecBole's evaluator, scored by ours."""
    from sklearn.pipeline import Pipeline

    from openmaas.ml.engine.adapters import make_adapter

    out = {}
    valid_frame, valid_columns, valid_spec, valid_splits = tasks["ml-100k-valid"].load()
    train_rows, valid_rows = valid_splits.train_test(0)
    items, counts = np.unique(valid_frame["item"].to_numpy()[train_rows], return_counts=True)
    pipe = Pipeline([("prep", "passthrough"), ("model", Popularity(items, counts))])
    adapter = make_adapter(valid_frame, valid_columns, valid_spec, lambda line: None)
    out["valid"] = adapter.evaluate(pipe, valid_rows, train_rows)[1]
    frame, columns, spec, splits = tasks["ml-100k"].load()
    seen, test_rows = splits.train_test(0)
    adapter = make_adapter(frame, columns, spec, lambda line: None)
    out["test"] = adapter.evaluate(pipe, test_rows, seen)[1]
    return out


# -- one run in its own process ---------------------------------------------------------------


def child(job_file: Path) -> None:
    """``recsys.py --child JOB``: one ``execute_run`` (and, if asked, its model on a test task)."""
    import resource

    from openmaas.ml.catalog.persist import load_pipeline
    from openmaas.ml.engine import RunCallbacks, execute_run
    from openmaas.ml.engine.adapters import make_adapter

    job = json.loads(job_file.read_text())

    class Fits(RunCallbacks):
        def __init__(self) -> None:
            self.seconds: dict[str, float] = {}
            self.epochs = 0

        def on_progress(self, event: dict[str, Any]) -> None:
            if event.get("event") == "fit_done":
                self.seconds[event["key"]] = float(event["seconds"])
            elif event.get("event") == "epoch":
                self.epochs += 1

    frame, columns, spec, splits = task_files(job["task"]).load()
    fits = Fits()
    start = time.perf_counter()
    result = execute_run(frame, columns, spec, splits, "ncf", job["params"], job["seed"],
                         Path(job["out"]), callbacks=fits)  # fmt: skip
    record: dict[str, Any] = {
        "metrics": {k: v["mean"] for k, v in result.metrics.items()},
        "fits": fits.seconds, "epochs": fits.epochs, "run_s": time.perf_counter() - start,
    }  # fmt: skip
    if job.get("test_task"):
        test_frame, test_columns, test_spec, test_splits = task_files(job["test_task"]).load()
        seen, test_rows = test_splits.train_test(0)
        pipe = load_pipeline(Path(job["out"]) / "models" / "fold_0")
        adapter = make_adapter(test_frame, test_columns, test_spec, lambda line: None)
        t0 = time.perf_counter()
        record["test"] = adapter.evaluate(pipe, test_rows, seen)[1]
        record["test_eval_s"] = time.perf_counter() - t0
    record["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(job["result"]).write_text(json.dumps(record))


@dataclass
class Run:
    family: str
    params: dict[str, Any]
    task: str
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def train_s(self) -> float:
        return float(sum(self.record["fits"].values()))

    @property
    def label(self) -> str:
        p = self.params
        extra = f", {p['n_negatives']} negatives" if p["n_negatives"] != 1 else ""
        if p.get("embedding_l2"):
            extra += f", embedding_l2 {p['embedding_l2']:g}"
        if p.get("lr_schedule", "constant") != "constant":
            extra += f", {p['lr_schedule']} from lr {p['learning_rate']:g}"
        return f"{self.family}, {p['epochs']} epochs{extra}"


def run_in_child(
    work: Path, tasks: dict[str, TaskFiles], run: Run, seed: int, lock: Path | None
) -> Run:
    name = f"{run.task}-{len(list(work.glob('*.job.json')))}"
    job = {
        "task": vars(tasks[run.task]),
        "params": run.params, "seed": seed, "out": str(work / name),
        "result": str(work / f"{name}.result.json"),
        "test_task": vars(tasks["ml-100k"]) if run.task == "ml-100k-valid" else None,
    }  # fmt: skip
    job = json.loads(json.dumps(job, default=str))
    path = work / f"{name}.job.json"
    path.write_text(json.dumps(job))
    subprocess.run(locked([sys.executable, __file__, "--child", str(path)], lock), check=True)
    run.record = json.loads(Path(job["result"]).read_text())
    shutil.rmtree(work / name, ignore_errors=True)
    return run


# -- report ----------------------------------------------------------------------------------


def report(
    info: dict[str, Any],
    pop: dict[str, dict[str, float | None]],
    selection: list[Run],
    chosen: dict[str, Run],
    picks: dict[str, Run],
    platform: dict[str, Run],
    recbole: dict[str, dict[str, Any]],
    recbole_here: bool,
    wall_s: float,
    machine: str,
) -> str:
    where = (
        f"this run, {recbole['BPR']['torch_threads']} thread(s)"
        if recbole_here
        else "results.jsonl, measured elsewhere, 2 threads"
    )
    ref = recbole["Pop"]
    head = "| Recall@10 | NDCG@10 | Hit@10 | MRR@10 | Precision@10 |"
    order = ["recall@10", "ndcg@10", "hit_rate@10", "mrr@10", "precision@10"]

    def cells(m: dict[str, Any], keys: dict[str, str] | None = None) -> str:
        keys = keys or {k: k for k in order}
        return " | ".join(f"{float(m[keys[k]]):.4f}" for k in order)

    lines = [
        f"# Recommendation benchmark: MovieLens-100K on RecBole's split ({date.today()})",
        "",
        "`python benchmarks/recsys.py" + (" --recbole" if recbole_here else "") + "`. "
        f"RecBole 1.2.1's split exported by its own pipeline: {info['n_users']} users, "
        f"{info['n_items']} items, {info['rows']['train']:,} / {info['rows']['valid']:,} / "
        f"{info['rows']['test']:,} train / valid / test interactions "
        f"(RS {info['split']['RS']}, seed {info['seed']}). Full ranking over all items, "
        f"earlier interactions masked, @10. Times: wall seconds on a 2-core machine {machine}; "
        "our fits are single-threaded; RecBole's reference ran with torch's 2 threads on an "
        "otherwise idle machine.",
        "",
        "## Split and metrics check",
        "",
        "One fixed ranking (every item by its number of training interactions, ties broken "
        "by id) scored by RecBole's evaluator in its venv and by our engine's evaluation on "
        "the imported tasks. (RecBole's own Pop model is weaker, test NDCG@10 "
        f"{ref['test']['ndcg@10']:.4f}: it counts an item once per training batch.)",
        "",
        f"| | {head[2:]}",
        "|---|---|---|---|---|---|",
        f"| RecBole's evaluator, valid | {cells(info['popularity']['valid'], RECBOLE_KEYS)} |",
        f"| our evaluation, valid | {cells(pop['valid'])} |",
        f"| RecBole's evaluator, test | {cells(info['popularity']['test'], RECBOLE_KEYS)} |",
        f"| our evaluation, test | {cells(pop['test'])} |",
        "",
        "## Selection on the validation part (task `ml-100k-valid`)",
        "",
        "Each candidate is one engine run: 2 inner fits on halves of RecBole's training "
        "part, then the refit on all of it, scored on the validation part. "
        "Common settings: batch 2048, Adam, no early stopping "
        "(the epochs are part of the configuration).",
        "",
        f"| configuration | {head[2:]} train s | run s |",
        "|---|---|---|---|---|---|---|---|",
        *[
            f"| {r.label}{' **(chosen)**' if r is chosen.get(r.family) else ''} | "
            f"{cells(r.record['metrics'])} | {r.train_s:.1f} | {r.record['run_s']:.1f} |"
            for r in selection
        ],
        f"| RecBole BPR at its best epoch ({where}) | "
        f"{cells(recbole['BPR']['best_valid'], RECBOLE_KEYS)} | | |",
        f"| RecBole NeuMF at its best epoch | "
        f"{cells(recbole['NeuMF']['best_valid'], RECBOLE_KEYS)} | | |",
        "",
        "## Test part",
        "",
        "Each family's configuration chosen above, scored two ways. *RecBole's protocol*: "
        "the model its selection run trained on RecBole's training part, scored on the test "
        "part with training and validation interactions masked, as RecBole scores its "
        "best-validation checkpoint. *Platform protocol*: a run on task `ml-100k`, whose "
        "refit trains on the training + validation parts (12% more interactions) for the "
        "chosen epochs. train s: every fit of that run (2 inner fits + the refit); RecBole: "
        "`trainer.fit` (its epochs and their validation). Peak RSS: the run's process.",
        "",
        f"| model | {head[2:]} train s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    sources = [(where, recbole)]
    if recbole_here:
        sources.append(("results.jsonl, measured elsewhere, 2 threads", recbole_reference()))
    for source, records in sources:
        for model in ("BPR", "NeuMF"):
            r = records[model]
            lines.append(
                f"| RecBole {model} ({source}; {r['epochs_run']} epochs, best "
                f"{r['best_epoch']}) | {cells(r['test'], RECBOLE_KEYS)} | "
                f"{r['train_wall_s']:.1f} | {r['peak_rss_mb']} |"
            )
    for family, run in chosen.items():
        lines.append(
            f"| ours: {run.label}, RecBole's protocol (trained on train) | "
            f"{cells(run.record['test'])} | {run.train_s:.1f} | {run.record['peak_rss_mb']:.0f} |"
        )
        if family in platform:
            p = platform[family]
            lines.append(
                f"| ours: {p.label}, platform protocol (refit on train + valid) | "
                f"{cells(p.record['metrics'])} | {p.train_s:.1f} | "
                f"{p.record['peak_rss_mb']:.0f} |"
            )
    here = recbole if recbole_here else None
    lines += ["", "## Targets", "", *targets(picks, platform, recbole_reference(), here), "",
              f"Whole benchmark: {wall_s:.0f} s."]  # fmt: skip
    return "\n".join(lines)


def valid_ndcg(run: Run) -> float:
    return float(run.record["metrics"]["ndcg@10"])


def targets(
    picks: dict[str, Run],
    platform: dict[str, Run],
    reference: dict[str, dict[str, Any]],
    here: dict[str, dict[str, Any]] | None,
) -> list[str]:
    """The issue's targets (RecBole's figures in results.jsonl), for each protocol.

    ``here``: RecBole measured in this run, for a second, same-load time comparison.
    """
    out = []
    neumf, bpr = reference["NeuMF"], reference["BPR"]["test"]
    protocols = {
        "RecBole's protocol": {k: (r, r.record["test"]) for k, r in picks.items()},
        "platform protocol": {
            k: (platform[r.family], platform[r.family].record["metrics"])
            for k, r in picks.items()
            if r.family in platform
        },
    }
    for name, runs in protocols.items():
        if "neumf" in runs:
            run, m = runs["neumf"]
            ok = m["ndcg@10"] >= neumf["test"]["ndcg@10"] and run.train_s < neumf["train_wall_s"]
            line = (
                f"- {name}: our NeuMF ({run.label}) NDCG@10 {m['ndcg@10']:.4f} in "
                f"{run.train_s:.1f} s of training; target: RecBole's NeuMF "
                f"{neumf['test']['ndcg@10']:.4f} in {neumf['train_wall_s']:.1f} s: "
                f"**{'MET' if ok else 'NOT MET'}**"
            )
            if here is not None:
                line += f" (RecBole's NeuMF in this run: {here['NeuMF']['train_wall_s']:.1f} s)"
            out.append(line + ".")
        if "best" in runs:
            run, m = runs["best"]
            ok = m["ndcg@10"] > bpr["ndcg@10"] and m["recall@10"] > bpr["recall@10"]
            out.append(
                f"- {name}: our best configuration on validation ({run.label}) NDCG@10 "
                f"{m['ndcg@10']:.4f}, Recall@10 {m['recall@10']:.4f}; target: above RecBole's "
                f"BPR {bpr['ndcg@10']:.4f}, {bpr['recall@10']:.4f}: "
                f"**{'MET' if ok else 'NOT MET'}**."
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--recbole", action="store_true", help="run RecBole's BPR and NeuMF too")
    ap.add_argument("--recbole-threads", type=int, default=1, help="RecBole's torch threads")
    ap.add_argument("--seed", type=int, default=0, help="the runs' seed")
    ap.add_argument("--no-platform", action="store_true", help="skip the refits on train+valid")
    ap.add_argument("--smoke", action="store_true", help="one epoch per run: checks the wiring")
    ap.add_argument("--out", type=Path, default=RESULTS / "recsys.md", help="the results file")
    ap.add_argument("--lock", type=Path, help="flock this file around each timed run")
    ap.add_argument("--machine", default="shared with other jobs",
                    help="how the machine was used, for the report")  # fmt: skip
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    wall, load = time.perf_counter(), os.getloadavg()[0]
    python = ensure_venv()
    info = export_split(python)
    print(f"split: {info}", flush=True)
    recbole = recbole_reference()
    home = Path(tempfile.mkdtemp(prefix="openmaas-recsys-"))
    try:
        tasks = import_split(home, pd.read_csv(SPLIT_CSV))
        pop = popularity_check(tasks)
        print(f"popularity: {pop}", flush=True)
        selection = []
        for family, candidates in CANDIDATES.items():
            for params in candidates:
                params = {**params, "epochs": 1} if args.smoke else params
                run = run_in_child(home, tasks, Run(family, params, "ml-100k-valid"), args.seed,
                                   args.lock)  # fmt: skip
                selection.append(run)
                print(f"{run.label}: valid {run.record['metrics']}, "
                      f"train {run.train_s:.1f} s", flush=True)  # fmt: skip
        chosen = {
            family: max((r for r in selection if r.family == family), key=valid_ndcg)
            for family in CANDIDATES
        }
        picks = {"neumf": max((r for f, r in chosen.items() if f.startswith("NeuMF")),
                              key=valid_ndcg),
                 "best": max(chosen.values(), key=valid_ndcg)}  # fmt: skip
        platform: dict[str, Run] = {}
        for family in dict.fromkeys(r.family for r in picks.values()):
            if args.no_platform:
                break
            run = run_in_child(home, tasks, Run(family, chosen[family].params, "ml-100k"),
                               args.seed, args.lock)  # fmt: skip
            platform[family] = run
            print(f"{run.label} on train+valid: test {run.record['metrics']}, "
                  f"train {run.train_s:.1f} s", flush=True)  # fmt: skip
        if args.recbole:
            for model in ("BPR", "NeuMF"):
                recbole[model] = run_recbole(python, model, args.recbole_threads, args.lock)
                print(f"RecBole {model}: {recbole[model]}", flush=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    machine = (f"{args.machine} (1-minute load average {load:.1f} at the start, "
               f"{os.getloadavg()[0]:.1f} at the end)")  # fmt: skip
    table = report(info, pop, selection, chosen, picks, platform, recbole, args.recbole,
                   time.perf_counter() - wall, machine)  # fmt: skip
    print(table)
    if not args.smoke:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
