"""The per-round LightGBM callback: learning curve, progress, early stopping, checkpoints.

**Losses.** LightGBM would evaluate its metric on every dataset after every
round, which on a long fit costs a quarter of the training time. So the fit
runs with ``metric: None`` and :class:`Rounds` computes the loss itself from
the scores LightGBM keeps up to date anyway (``eval_train``/``eval_valid`` with
a ``feval``): the validation loss every round when early stopping needs it,
otherwise, like the training loss, at the first round, every
:func:`curve_every` rounds and at the last round. Curves keep one entry per
round; a round whose loss was not computed holds ``None`` (so entry ``i`` is
always round ``i + 1``).

**Checkpoints** are UTF-8 JSON: ``{"format": 1, "done": rounds, "model": model
text, "curve": {...}, "best": [round, loss, []] | null}``; ``done`` counts
every round in the model, a parent's included. They are built only when the
callbacks want one (:meth:`TrainingCallbacks.checkpoint_due`): the model text
of a long fit is megabytes.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from openmaas.errors import InvalidFile, TrainingDiverged
from openmaas.ml.catalog.base import LearningCurve, TrainingCallbacks

if TYPE_CHECKING:
    from openmaas.ml.catalog.gbdt import LightGBM

CURVE_POINTS = 50
"""About how many rounds of a fit get their losses computed (the validation loss: when
early stopping is off); on a fit of up to this many rounds, every round."""

_EPS = 1e-15  # LightGBM's clipping of probabilities in its log losses


def curve_every(rounds: int) -> int:
    """Rounds between recorded losses for a fit of ``rounds`` rounds (1 up to CURVE_POINTS)."""
    return max(1, math.ceil(rounds / CURVE_POINTS))


def model_text(booster: Any) -> str:
    """``booster.model_to_string()``, serialised once: LightGBM's ``model_to_string``
    serialises a model of more than 1 MB twice (the first pass only measures it), and
    a long fit's checkpoints are megabytes. Through a file it takes half the time."""
    with tempfile.TemporaryDirectory(prefix="openmaas-lgb-") as tmp:
        path = Path(tmp) / "model.txt"
        booster.save_model(path)
        return path.read_text(encoding="utf-8")


def _loss(kind: str) -> Any:
    """A LightGBM ``feval`` computing the loss ``booster_params`` names for ``kind``."""

    def feval(preds: Any, data: Any) -> tuple[str, float, bool]:
        label = np.asarray(data.get_label())
        p = np.asarray(preds, dtype=np.float64)
        with np.errstate(all="ignore"):
            if kind == "binary_logloss":
                p = np.clip(p, _EPS, 1 - _EPS)
                value = -float(np.mean(label * np.log(p) + (1 - label) * np.log1p(-p)))
            elif kind == "multi_logloss":
                p = p.reshape(len(label), -1)
                picked = p[np.arange(len(label)), label.astype(np.int64)]
                value = -float(np.mean(np.log(np.clip(picked, _EPS, None))))
            else:
                value = float(np.mean((p - label) ** 2))
        return kind, value, False

    return feval


class Rounds:
    """A ``lightgbm.train`` callback (runs after each round)."""

    order = 100

    def __init__(
        self,
        model: LightGBM,
        callbacks: TrainingCallbacks,
        *,
        has_valid: bool,
        first: int,
        total: int,
        metric: str = "binary_logloss",
    ) -> None:
        self.model = model
        self.callbacks = callbacks
        self.has_valid = has_valid
        self.curve = LearningCurve()
        self.done = first  # rounds in the model so far (a parent's included)
        self.first = first  # rounds before this fit started (a parent's)
        self.total = total  # rounds when this fit is complete
        self.stopped = False  # early stopping ended the fit
        self.best: tuple[int, float] | None = None  # (iteration, validation loss)
        self.every = curve_every(total - first)
        self.early_stopping = has_valid and model.early_stopping_rounds is not None
        self.feval = _loss(metric)
        self._scores: Any = None  # the scores the last loss was computed from
        #: (round, a copy of LightGBM's validation scores after it): the best round's when
        #: early stopping, else the last round whose validation loss was computed
        self.valid_scores: tuple[int, np.ndarray] | None = None

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
            self.best = (int(best[0]), float(best[1]))
        return booster

    def __call__(self, env: Any) -> None:
        import lightgbm as lgb

        self.done = env.iteration + 1
        k = self.done - self.first
        due = k % self.every == 0 or k == 1 or self.done == self.total
        metrics: dict[str, float | None] = {"train_loss": None}
        if due:
            metrics["train_loss"] = self._evaluate("train", env.model.eval_train(self.feval))
        if self.has_valid:
            metrics["valid_loss"] = None
            if due or self.early_stopping:
                loss = self._evaluate("valid", env.model.eval_valid(self._seeing))
                metrics["valid_loss"] = loss
                if not self.early_stopping or self.best is None or loss < self.best[1]:
                    # LightGBM reuses the buffer every round
                    self.valid_scores = (self.done, np.array(self._scores))
        self.curve.add(**metrics)
        self.callbacks.on_epoch(self.done, {k: v for k, v in metrics.items() if v is not None})
        if self.early_stopping:
            loss = metrics["valid_loss"]
            assert loss is not None
            if self.best is None or loss < self.best[1]:
                self.best = (env.iteration, loss)
            patience = self.model.early_stopping_rounds
            assert patience is not None
            if env.iteration - self.best[0] >= patience or self.done == self.total:
                self.stopped = True  # keep the best round's trees, drop the rest
                raise lgb.callback.EarlyStopException(self.best[0], [])
        if (self.done - self.first) % self.model.checkpoint_every == 0 and (
            self.callbacks.checkpoint_due(self.done)
        ):
            self.callbacks.checkpoint(self.done, self._state(env.model))

    def _seeing(self, preds: Any, data: Any) -> tuple[str, float, bool]:
        """``feval``, keeping the scores it was given."""
        self._scores = preds
        return self.feval(preds, data)  # type: ignore[no-any-return]

    def _evaluate(self, dataset: str, results: list[Any]) -> float:
        """The loss in LightGBM's ``(data, name, value, higher_better)`` results; raise if
        it is not finite."""
        _, name, value, _ = results[0]
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"training diverged at round {self.done}: {dataset} {name} is {value}; try a "
                "lower learning_rate or rescale the target",
                details={"reason": "non_finite_loss", "round": self.done},
            )
        return float(value)

    def _state(self, booster: Any) -> bytes:
        best = None if self.best is None else [self.best[0], self.best[1], []]
        data = {
            "format": 1,
            "done": self.done,
            "model": model_text(booster),
            "curve": self.curve.values,
            "best": best,
        }
        return json.dumps(data).encode()
