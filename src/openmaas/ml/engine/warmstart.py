"""Warm start: a run whose every fit continues its parent run's fit in the same place.

The parent is a finished run's ``out_dir`` of the same algorithm and task type
with as many outer and inner folds. Each fit of the child (inner fit, fold
refit, final model) reuses the fitted preprocessor of the parent's fit in the
same place and continues its model (LightGBM ``init_model``: ``n_estimators``
more rounds; torch: fine-tuning from its weights). Starting inner fits from
the parent's inner fits, not from its fold refit, keeps the child's
out-of-fold predictions honest: the parent's inner fit (f, i) never saw inner
fold i's validation rows. The hyperparameters may differ as long as the model
shapes agree (a torch architecture mismatch is reported by the fit).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.pipeline import Pipeline

from openmaas.errors import InvalidInput
from openmaas.ml.catalog.base import Algorithm
from openmaas.ml.catalog.persist import load_pipeline
from openmaas.ml.engine.results import FINAL_MODEL, RunResult, fold_model, inner_model
from openmaas.ml.splits import Splits
from openmaas.ml.tasks import TaskSpec

__all__ = ["ParentRun", "open_parent"]


@dataclass(frozen=True)
class ParentRun:
    directory: Path
    result: RunResult

    def pipeline(self, where: str) -> Pipeline:
        """The parent's fitted pipeline at ``where`` (``models/fold_0``, ...)."""
        return load_pipeline(self.directory / where)

    def summary(self, metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """What the child records: the parent, its mean metrics and the child's change."""
        before = {name: s["mean"] for name, s in self.result.metrics.items()}
        delta = {
            name: None
            if s["mean"] is None or before.get(name) is None
            else s["mean"] - before[name]
            for name, s in metrics.items()
        }
        parent = self.result
        return {
            "dir": str(self.directory), "fingerprint": parent.fingerprint,
            "algorithm": parent.algorithm, "seed": parent.seed, "score": parent.score,
            "metrics": before, "delta": delta,
        }  # fmt: skip


def open_parent(directory: Path, cls: type[Algorithm], spec: TaskSpec, splits: Splits) -> ParentRun:
    """The parent run in ``directory``, if a run of ``cls`` on ``spec`` can warm-start from it."""
    if not cls.warm_start_capable:
        raise InvalidInput(
            f"algorithm {cls.name!r} cannot warm-start from a parent run: it has no model "
            "to continue (it refits from scratch)",
            details={"algorithm": cls.name},
        )
    try:
        parent = RunResult.read(directory)
    except InvalidInput as e:
        raise InvalidInput(f"the parent run in {directory} has no readable result: {e}") from e
    if (parent.algorithm, parent.task_type) != (cls.name, spec.type):
        raise InvalidInput(
            f"the parent run trained {parent.algorithm!r} on a {parent.task_type} task; "
            f"this run trains {cls.name!r} on a {spec.type} task"
        )
    n_inner = len(parent.folds[0].inner_metrics) if parent.folds else 0
    if (len(parent.folds), n_inner) != (splits.n_outer, splits.n_inner):
        raise InvalidInput(
            f"the parent run has {len(parent.folds)} outer and {n_inner} inner folds; "
            f"this task's splits have {splits.n_outer} and {splits.n_inner}"
        )
    wanted = [FINAL_MODEL, *(fold_model(f) for f in range(splits.n_outer))]
    wanted += [inner_model(f, i) for f in range(splits.n_outer) for i in range(splits.n_inner)]
    for where in wanted:
        if not (directory / where / "pipeline.json").is_file():
            raise InvalidInput(f"the parent run in {directory} lacks its model {where}")
    return ParentRun(directory, parent)
