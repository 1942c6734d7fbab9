"""What a run keeps: the layout of its directory and ``result.json``.

``out_dir`` after a run::

    result.json             RunResult (below)
    predictions.parquet     see :mod:`.predictions`
    curves.json             {"fold_0": {...}, "fold_0/inner_0": {...}, ..., "final": {...}}
    run.log                 one line per fit and per undefined metric, warnings
    models/fold_<f>/        the refit on outer fold f's training part (a pipeline:
                            persist.save_pipeline, loaded with persist.load_pipeline)
    models/final/           the final model (see ``final`` below)
    models/inner/fold_<f>/inner_<i>/
                            the inner fits, kept only for warm-start-capable
                            algorithms: a child run's inner fits start from them

``curves.json`` maps each fit to its learning curve (metric -> one value per
round or epoch): ``fold_<f>`` is the refit (training metrics only: it has no
validation part), ``fold_<f>/inner_<i>`` the inner fits (training and
validation), ``final`` the final model; non-iterative algorithms have none.

``result.json`` (every float may be null where undefined)::

    format            1
    algorithm, task_type, seed
    params            every hyperparameter (defaults merged), random_state left out
    primary_metric    spec.metrics[0]; direction "maximize" | "minimize"
    score, score_std  mean and std over outer folds of the primary metric (the
                      leaderboard's); std is null with one outer fold
    metrics           {name: {"mean", "std", "folds": [per outer fold]}} on outer test parts
    validation        the same over every inner validation part of every outer
                      fold (what tuning may look at without touching test parts)
    folds             [{"fold", "metrics", "inner_metrics", "n_train", "n_test",
                        "length", "seconds"}]; length = training rounds or epochs
                      of the refit (iterative algorithms)
    final             {"source": "fold_0" (one outer fold: its refit is the final
                      model) | "refit" (on every row), "rows", "length"}
    features          the dataset columns the models read
    environment       python, platform, openmaas, packages, seed, threads,
                      dataset_version (as given), data_digest, splits_digest
    wall_time_s       this execution plus the recorded time of restored folds
    peak_rss_mb       peak resident memory of the executing process
    parent            null, or {"dir", "fingerprint", "algorithm", "seed", "score",
                      "metrics": {name: mean}, "delta": {name: new mean - parent's}}
    fingerprint       SHA-256 of what determines the results (task, splits, data,
                      algorithm, params, seed, parent)
    resumed_folds     folds restored from completed payloads
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openmaas.errors import InvalidInput
from openmaas.ml.catalog.persist import read_json, write_json
from openmaas.ml.engine.scoring import Scores

__all__ = [
    "CURVES_FILE",
    "FINAL_MODEL",
    "FORMAT",
    "LOG_FILE",
    "PREDICTIONS_FILE",
    "RESULT_FILE",
    "FoldResult",
    "RunResult",
    "fold_model",
    "inner_model",
    "read_curves",
]

FORMAT = 1
RESULT_FILE = "result.json"
PREDICTIONS_FILE = "predictions.parquet"
CURVES_FILE = "curves.json"
LOG_FILE = "run.log"
FINAL_MODEL = "models/final"


def fold_model(f: int) -> str:
    return f"models/fold_{f}"


def inner_model(f: int, i: int) -> str:
    return f"models/inner/fold_{f}/inner_{i}"


@dataclass
class FoldResult:
    """One outer fold: scores on its test part and on each inner validation part."""

    fold: int
    metrics: Scores
    inner_metrics: list[Scores]
    n_train: int
    n_test: int
    length: int | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FoldResult:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


@dataclass
class RunResult:
    """``result.json`` as an object (see the module docstring for each field)."""

    algorithm: str
    task_type: str
    params: dict[str, Any]
    seed: int
    primary_metric: str
    direction: str
    score: float | None
    score_std: float | None
    metrics: dict[str, dict[str, Any]]
    validation: dict[str, dict[str, Any]]
    folds: list[FoldResult]
    final: dict[str, Any]
    features: list[str]
    environment: dict[str, Any]
    wall_time_s: float
    peak_rss_mb: float | None
    fingerprint: str
    parent: dict[str, Any] | None = None
    resumed_folds: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = {"format": FORMAT, **dataclasses.asdict(self)}
        out["folds"] = [f.to_dict() for f in self.folds]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        if data.get("format") != FORMAT:
            raise InvalidInput(f"unsupported run result format {data.get('format')!r}")
        values = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
        values["folds"] = [FoldResult.from_dict(f) for f in data["folds"]]
        return cls(**values)

    def write(self, out_dir: Path) -> None:
        write_json(Path(out_dir) / RESULT_FILE, self.to_dict())

    @classmethod
    def read(cls, out_dir: Path) -> RunResult:
        return cls.from_dict(read_json(Path(out_dir) / RESULT_FILE))


def read_curves(out_dir: Path) -> dict[str, dict[str, list[float]]]:
    """``curves.json`` of a run: fit key -> metric -> one value per round or epoch."""
    curves: dict[str, dict[str, list[float]]] = json.loads(
        (Path(out_dir) / CURVES_FILE).read_text()
    )
    return curves
