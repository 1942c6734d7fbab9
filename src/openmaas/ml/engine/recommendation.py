"""Recommendation tasks: interactions in, a full ranking of every item per user out.

The model fits on the (user, item) pairs of a training part, with the rating
as ``y`` (``None`` for implicit feedback without one). A part is evaluated
over a full ranking: for each user with a relevant interaction in the part,
every item of the dataset is scored (``score_matrix``; items the model never
saw score ``-inf``: it cannot recommend them), the items the user met in the
earlier part of the split (``seen``: the training part) are masked, and the
task's ranking metrics (``recall@k``, ``ndcg@k``, ...) compare the ranking to
the user's interactions in the part. An interaction is relevant when the task
is explicit (any rated item) or its implicit strength is positive (or absent).

Users are scored in chunks of at most :data:`CELLS` (user, item) cells, so
memory stays bounded; a metric's mean is weighted by each chunk's users.
Predictions are each evaluated user's top ``K`` unmasked items, ``K`` the
largest cutoff among the task's metrics.

A recommendation algorithm exposes ``score_matrix(users)`` (scores of
``users`` against its ``items_``), as NCF does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from openmaas.errors import InvalidInput
from openmaas.ml.data.schema import ColumnSchema
from openmaas.ml.engine.adapters import Log, Rows, TaskAdapter, part_name, training_parts
from openmaas.ml.engine.scoring import Scores, guarded
from openmaas.ml.metrics import get_metric
from openmaas.ml.splits import Splits
from openmaas.ml.tasks import TaskSpec

__all__ = ["CELLS", "Recommendation"]

CELLS = 2_000_000
"""Most (user, item) cells scored at once."""


class Recommendation(TaskAdapter):
    def __init__(
        self, frame: pd.DataFrame, columns: Sequence[ColumnSchema], spec: TaskSpec, log: Log
    ) -> None:
        super().__init__(frame, columns, spec, log)
        cfg = spec.recommendation
        assert cfg is not None
        self.pairs = frame[[cfg.user_column, cfg.item_column]]
        self.users, self.user_ids = pd.factorize(frame[cfg.user_column])
        self.items, self.item_ids = pd.factorize(frame[cfg.item_column])
        column = cfg.rating_column
        self.rating = None if column is None else frame[column].to_numpy(dtype=np.float64)
        self.relevant = np.ones(len(frame), dtype=bool)
        if self.rating is not None and cfg.implicit:
            self.relevant = np.nan_to_num(self.rating, nan=0.0) > 0
        self.metrics = [get_metric(name) for name in spec.metrics]
        self.k = max(m.k or 1 for m in self.metrics)

    def check(self, splits: Splits) -> None:
        for codes, what in ((self.users, "user"), (self.items, "item")):
            if (codes < 0).any():
                raise InvalidInput(
                    f"{int((codes < 0).sum())} interactions lack an {what} id; drop them"
                )
        for f, i, rows in training_parts(splits):
            if not self.relevant[rows].any():
                raise InvalidInput(f"the training part of {part_name(f, i)} has no interactions")

    def inputs(self, rows: Rows, context: Rows | None = None) -> tuple[Any, Any]:
        return self.pairs.iloc[rows], None if self.rating is None else self.rating[rows]

    def evaluate(
        self, pipe: Pipeline, rows: Rows, seen: Rows, output: Any = None
    ) -> tuple[pd.DataFrame, Scores]:
        model = pipe.steps[-1][1]
        users = np.unique(self.users[rows[self.relevant[rows]]])
        at = pd.Index(self.item_ids).get_indexer(np.asarray(model.items_))
        step = max(1, CELLS // max(len(self.item_ids), 1))
        totals = dict.fromkeys((m.name for m in self.metrics), 0.0)
        weights = dict.fromkeys(totals, 0)
        tops = []
        for start in range(0, len(users), step):
            chunk = users[start : start + step]
            scores, relevance, mask = self._matrices(model, at, chunk, rows, seen)
            n = int((relevance & mask).any(axis=1).sum())
            for name, value in self._scores(scores, relevance, mask).items() if n else ():
                if value is not None:
                    totals[name] += value * n
                    weights[name] += n
            tops.append(self._top(chunk, np.where(mask, scores, -np.inf)))
        result: Scores = {k: totals[k] / weights[k] if weights[k] else None for k in totals}
        for name in (k for k, w in weights.items() if not w):
            self.log(f"{name} is undefined here: no user has a relevant unseen item")
        empty = pd.DataFrame({"user": self.user_ids[:0], "rank": [], "item": [], "score": []})
        return pd.concat(tops, ignore_index=True) if tops else empty, result

    def _scores(self, scores: np.ndarray, relevance: np.ndarray, mask: np.ndarray) -> Scores:
        """Every ranking metric over one chunk of users (its mean over them)."""
        return {m.name: guarded(m, relevance, scores, self.log, mask=mask) for m in self.metrics}

    def _matrices(
        self, model: Any, at: np.ndarray, chunk: np.ndarray, rows: Rows, seen: Rows
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scores, relevance in ``rows`` and unseen-candidate mask, ``(chunk, items)``."""
        shape = (len(chunk), len(self.item_ids))
        position = np.full(len(self.user_ids), -1)
        position[chunk] = np.arange(len(chunk))
        known = at >= 0
        scores = np.full(shape, -np.inf)
        raw = np.asarray(model.score_matrix(np.asarray(self.user_ids)[chunk]), dtype=np.float64)
        scores[:, at[known]] = raw[:, known]
        relevance = np.zeros(shape, dtype=bool)
        part = rows[self.relevant[rows]]
        p = position[self.users[part]]
        relevance[p[p >= 0], self.items[part][p >= 0]] = True
        mask = np.ones(shape, dtype=bool)
        p = position[self.users[seen]]
        mask[p[p >= 0], self.items[seen][p >= 0]] = False
        return scores, relevance, mask

    def _top(self, chunk: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
        """Each user's best ``k`` finite-scored items, best first (ties: item order)."""
        k = min(self.k, scores.shape[1])
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top.sort(axis=1)
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        values = np.take_along_axis(scores, top, axis=1)
        keep = np.isfinite(values)
        user = np.repeat(np.arange(len(chunk)), k).reshape(-1, k)
        rank = np.tile(np.arange(1, k + 1), (len(chunk), 1))
        return pd.DataFrame(
            {
                "user": np.asarray(self.user_ids)[chunk[user[keep]]],
                "rank": rank[keep].astype(np.int32),
                "item": np.asarray(self.item_ids)[top[keep]],
                "score": values[keep],
            }
        )
