"""How a run talks to whoever executes it (the job runner, a test).

:class:`RunCallbacks` does nothing by default; a runner overrides what it needs:

- ``on_progress(event)``: a JSON-able dict per step (see :data:`EVENTS`). It may
  raise to stop the run (cancellation); the exception propagates unchanged.
- ``on_fold_done(fold, payload)``: outer fold ``fold`` is finished; ``payload``
  holds everything the run keeps of it (metrics, predictions, curves, models,
  log). Only when more training follows: with several outer folds (the final
  model is then refitted), not with one (only writing the results follows).
- ``completed_folds()``: the payloads kept so far. A run restarted with them
  skips those folds and ends with the same result as an uninterrupted one.
- ``checkpoint(key, epoch, state)`` / ``resume_state(key)``: the epoch (torch)
  or every-N-rounds (LightGBM) checkpoints of one fit, and the last one back
  after a crash. A fit asks ``checkpoint_due(key, epoch)`` first and builds
  its state only if it is (a runner throttles checkpoints this way). Keys name
  the fit: ``fold_<f>/inner_<i>``, ``fold_<f>/refit``, ``final``. A fit
  resumed from its checkpoint ends as the uninterrupted one.
  Once ``on_fold_done(f, ...)`` has been called, the ``fold_<f>/...``
  checkpoints are obsolete and may be dropped.
  Checkpoints and payloads belong to one run: hand back only the same job's
  (payloads carry the run's fingerprint and are refused otherwise; torch
  checkpoints check theirs, LightGBM's cannot).

A killed run that kept both completed folds and checkpoints restarts where it
stopped: finished folds are restored from their payloads, the inner fits of
the unfinished fold rerun (deterministically; from their own checkpoints if
kept) and the fit that was running continues from its last checkpoint.
"""

from __future__ import annotations

from typing import Any

from openmaas.ml.catalog.base import TrainingCallbacks

__all__ = ["EVENTS", "FINAL", "RunCallbacks", "fit_callbacks"]

FINAL = -1
"""The fold number the final model's progress events carry."""

EVENTS = {
    "fold_start": "fold, folds",
    "fit_start": "key, fold, inner (None for refits), rows",
    "epoch": "key, fold, inner, epoch, metrics (the algorithm's per-epoch values)",
    "fit_done": "key, fold, inner, seconds",
    "fold_done": "fold, folds, metrics (outer test part), restored (from a payload)",
    "run_done": "score, seconds",
}
"""The ``event`` values of :meth:`RunCallbacks.on_progress` and the other keys each has."""


class RunCallbacks:
    """The hooks of one run; the default keeps nothing (see the module docstring)."""

    def on_progress(self, event: dict[str, Any]) -> None:
        return None

    def on_fold_done(self, fold: int, payload: bytes) -> None:
        return None

    def completed_folds(self) -> dict[int, bytes]:
        return {}

    def checkpoint_due(self, key: str, epoch: int) -> bool:
        return True

    def checkpoint(self, key: str, epoch: int, state: bytes) -> None:
        return None

    def resume_state(self, key: str) -> bytes | None:
        return None


class _Fit(TrainingCallbacks):
    """One fit's :class:`TrainingCallbacks`, forwarding to the run's under ``key``."""

    def checkpoint_due(self, epoch: int) -> bool:
        return False

    def __init__(self, run: RunCallbacks, key: str, event: dict[str, Any]) -> None:
        self.run = run
        self.key = key
        self.event = event

    def on_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        self.run.on_progress({**self.event, "event": "epoch", "epoch": epoch, "metrics": metrics})

    def resume_state(self) -> bytes | None:
        return self.run.resume_state(self.key)


class _CheckpointingFit(_Fit):
    def checkpoint_due(self, epoch: int) -> bool:
        return self.run.checkpoint_due(self.key, epoch)

    def checkpoint(self, epoch: int, state: bytes) -> None:
        self.run.checkpoint(self.key, epoch, state)


def fit_callbacks(run: RunCallbacks, key: str, event: dict[str, Any]) -> TrainingCallbacks:
    """The callbacks of the fit ``key``; they checkpoint only if ``run`` keeps checkpoints.

    (Torch serialises its whole training state for a checkpoint, so a run whose
    callbacks drop them should not pay for it every epoch.)
    """
    keeps = type(run).checkpoint is not RunCallbacks.checkpoint
    return (_CheckpointingFit if keeps else _Fit)(run, key, event)
