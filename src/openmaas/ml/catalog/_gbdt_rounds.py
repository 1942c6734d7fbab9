"""The per-round LightGBM callback: learning curve, progress, early stopping, checkpoints.

A checkpoint is UTF-8 JSON: ``{"format": 1, "done": rounds, "model": model text,
"curve": {...}, "best": [round, loss, eval results] | null}``; ``done`` counts
every round in the model, a parent's included.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from openmaas.errors import InvalidFile, TrainingDiverged
from openmaas.ml.catalog.base import LearningCurve, TrainingCallbacks

if TYPE_CHECKING:
    from openmaas.ml.catalog.gbdt import LightGBM


class Rounds:
    """A ``lightgbm.train`` callback (runs after each round, after LightGBM's own)."""

    order = 100

    def __init__(
        self,
        model: LightGBM,
        callbacks: TrainingCallbacks,
        *,
        has_valid: bool,
        first: int,
        total: int,
    ) -> None:
        self.model = model
        self.callbacks = callbacks
        self.has_valid = has_valid
        self.curve = LearningCurve()
        self.done = first  # rounds in the model so far (a parent's included)
        self.first = first  # rounds before this fit started (a parent's)
        self.total = total  # rounds when this fit is complete
        self.stopped = False  # early stopping ended the fit
        self.best: tuple[int, float, list[Any]] | None = None

    def restore(self, state: bytes) -> Any:
        """Take a checkpoint's curve and early-stopping state; return its booster."""
        import lightgbm as lgb

        try:
            data = json.loads(state)
            booster = lgb.Booster(model_str=data["model"])
        except (ValueError, KeyError, lgb.basic.LightGBMError) as e:
            raise InvalidFile(f"cannot resume from the checkpoint: {e}") from e
        self.curve = LearningCurve({k: list(v) for k, v in data["curve"].items()})
        self.done = int(data["done"])
        best = data.get("best")
        if best is not None:
            self.best = (int(best[0]), float(best[1]), [lgb.basic.EvalResult(*r) for r in best[2]])
        return booster

    def __call__(self, env: Any) -> None:
        import lightgbm as lgb

        self.done = env.iteration + 1
        metrics = {}
        for result in env.evaluation_result_list:
            key = f"{result.dataset_name}_loss"
            if not math.isfinite(result.metric_value):
                raise TrainingDiverged(
                    f"training diverged at round {self.done}: {result.dataset_name} "
                    f"{result.metric_name} is {result.metric_value}; try a lower "
                    "learning_rate or rescale the target",
                    details={"reason": "non_finite_loss", "round": self.done},
                )
            metrics[key] = result.metric_value
        self.curve.add(**metrics)
        self.callbacks.on_epoch(self.done, metrics)
        if self.has_valid:
            loss = metrics["valid_loss"]
            if self.best is None or loss < self.best[1]:
                self.best = (env.iteration, loss, list(env.evaluation_result_list))
            patience = self.model.early_stopping_rounds
            stop = patience is not None and env.iteration - self.best[0] >= patience
            if stop or self.done == self.total:
                self.stopped = True  # keep the best round's trees, drop the rest
                raise lgb.callback.EarlyStopException(self.best[0], self.best[2])
        if (self.done - self.first) % self.model.checkpoint_every == 0:
            self.callbacks.checkpoint(self.done, self._state(env.model))

    def _state(self, booster: Any) -> bytes:
        best = None
        if self.best is not None:
            best = [self.best[0], self.best[1], [list(r) for r in self.best[2]]]
        data = {
            "format": 1,
            "done": self.done,
            "model": booster.model_to_string(),
            "curve": self.curve.values,
            "best": best,
        }
        return json.dumps(data).encode()
