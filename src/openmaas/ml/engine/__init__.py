"""The training engine: a run = task + algorithm + hyperparameters + seed.

:func:`execute_run` fits an algorithm on a task's stored splits and writes
everything it keeps to a directory: per-fold and mean ± std metrics on the
outer test parts (what the leaderboard ranks), inner out-of-fold and outer
test predictions (what ensembles are built from), learning curves, a log, the
per-fold and final models (non-pickle formats) and ``result.json``
(environment, wall time, peak memory, parent). Pure computation: no database,
no artifact store, no HTTP; the job runner talks to it through
:class:`RunCallbacks` (progress, cancellation, checkpoints, resumption).

Modules: :mod:`.run` (the fold loop), :mod:`.fitting` (one fit: seeds,
training length), :mod:`.adapters`, :mod:`.recommendation`, :mod:`.sequence`
(per task type: inputs, predictions, scores), :mod:`.columns` (which columns
are features), :mod:`.predictions` (the predictions file),
:mod:`.results` (the run directory and ``result.json``), :mod:`.callbacks`,
:mod:`.resume` (fold payloads), :mod:`.warmstart`, :mod:`.scoring`,
:mod:`.environment`.
"""

from __future__ import annotations

from openmaas.ml.engine.callbacks import FINAL, RunCallbacks
from openmaas.ml.engine.predictions import read_predictions
from openmaas.ml.engine.results import FoldResult, RunResult, read_curves
from openmaas.ml.engine.run import execute_run

__all__ = [
    "FINAL",
    "FoldResult",
    "RunCallbacks",
    "RunResult",
    "execute_run",
    "read_curves",
    "read_predictions",
]
