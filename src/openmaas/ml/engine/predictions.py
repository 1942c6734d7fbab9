"""``predictions.parquet``: every prediction a run made, the input of ensembles and the SDK.

One file per run, one line per prediction. Every line names where it was made:

==============  =======  ========================================================
column          type     meaning
==============  =======  ========================================================
``outer_fold``  int16    the outer fold f
``part``        string   ``"oof"``: by the inner fit that did not train on it
                         (inner out-of-fold); ``"test"``: by the refit on outer
                         fold f's training part, on its test part
``inner_fold``  int16    the inner fold i for ``oof`` lines, -1 for ``test`` ones
==============  =======  ========================================================

For every outer fold, each row of its training part appears once as ``oof``
(except, on time-ordered splits, the earliest block, which no inner fold
validates) and each row of its test part once as ``test``. Lines come sorted
by outer fold, ``oof`` before ``test``, inner fold, then row and step
(recommendation: user, in order of first appearance, and rank).

The other columns depend on the task type:

- binary, multiclass: ``row`` (int64, 0-based dataset row), ``prediction``
  (the label, the target's type) and ``proba_<class>`` (float64) per class of
  the target, in sorted class order (0 for a class the fit never saw);
- regression: ``row``, ``prediction`` (float64);
- multitarget: ``row``, ``prediction_<target>`` per target column;
- anomaly: ``row``, ``score`` (float64, higher = more anomalous);
- sequence: ``row`` (the dataset row of the predicted step), ``step`` (int16,
  1..horizon: the window predicting it ends ``step`` rows before it),
  ``prediction`` and, for label targets, ``proba_<class>``; a row has at most
  one line per (part, step);
- recommendation: no ``row``; ``user``, ``rank`` (int32, 1 = best), ``item``,
  ``score`` (float64): each evaluated user's top K unseen items, K the largest
  cutoff among the task's metrics (see :mod:`.recommendation`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["FOLD_COLUMNS", "read_predictions", "tag", "write_predictions"]

FOLD_COLUMNS = ("outer_fold", "part", "inner_fold")


def tag(frame: pd.DataFrame, outer_fold: int, part: str, inner_fold: int | None) -> pd.DataFrame:
    """``frame`` with the fold columns inserted after ``row`` (first if there is none)."""
    out = frame.reset_index(drop=True)
    at = 1 if "row" in out.columns else 0
    n = len(out)
    values = {
        "outer_fold": np.full(n, outer_fold, dtype=np.int16),
        "part": pd.Series([part] * n, dtype="string"),
        "inner_fold": np.full(n, -1 if inner_fold is None else inner_fold, dtype=np.int16),
    }
    for offset, name in enumerate(FOLD_COLUMNS):
        out.insert(at + offset, name, values[name])
    if "row" in out.columns:
        out["row"] = out["row"].astype(np.int64)
    return out


def write_predictions(frames: list[pd.DataFrame], path: Path) -> None:
    combined = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    combined.to_parquet(path, index=False)


def read_predictions(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)
