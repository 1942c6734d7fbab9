"""Per task type: the model inputs of a set of rows, and predictions and scores of a part.

:class:`TaskAdapter` is what the run loop needs of a task type:

- ``inputs(rows, context)``: ``X``, ``y`` to fit on ``rows``, or to validate on
  them when ``context`` (the rows fitted on) is given: sequence windows may read
  their past there, and classification leaves out classes the fit never saw;
- ``evaluate(pipe, rows, seen)``: the prediction columns for ``rows`` (see
  :mod:`.predictions`) and every task metric on them; ``seen`` are the rows of
  earlier parts (recommendation masks them, sequence windows read them);
- ``check(splits)``: what must hold of every part before anything is fitted.

Tabular tasks (binary, multiclass, regression, multitarget) and anomaly tasks
live here; :mod:`.recommendation` and :mod:`.sequence` hold the others.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.pipeline import Pipeline

from openmaas.errors import InvalidInput
from openmaas.ml._folds import show
from openmaas.ml.data.schema import ColumnSchema
from openmaas.ml.engine.columns import feature_columns
from openmaas.ml.engine.scoring import Scores, score_predictions
from openmaas.ml.splits import Splits
from openmaas.ml.tasks import TaskSpec

__all__ = [
    "Anomaly",
    "Tabular",
    "TaskAdapter",
    "align_proba",
    "make_adapter",
    "part_name",
    "training_parts",
]

Rows = npt.NDArray[np.int64]
Log = Callable[[str], None]


class TaskAdapter(abc.ABC):
    """Inputs, predictions and scores of one task type (see the module docstring)."""

    def __init__(
        self, frame: pd.DataFrame, columns: Sequence[ColumnSchema], spec: TaskSpec, log: Log
    ) -> None:
        self.frame = frame
        self.spec = spec
        self.features = feature_columns(spec, columns)
        self.log = log

    def check(self, splits: Splits) -> None:  # noqa: B027 - optional hook
        """InvalidInput if some part of ``splits`` cannot be fitted or scored."""

    @abc.abstractmethod
    def inputs(self, rows: Rows, context: Rows | None = None) -> tuple[Any, Any]: ...

    @abc.abstractmethod
    def evaluate(
        self, pipe: Pipeline, rows: Rows, seen: Rows, output: Any = None
    ) -> tuple[pd.DataFrame, Scores]:
        """Predictions of ``rows`` (``seen``: the rows the model trained on) and their scores.

        ``output``, if given, is what the model predicts for ``rows`` (its
        ``validation_output_``): adapters that can use it need not predict again.
        """


def part_name(f: int, i: int | None) -> str:
    """``outer fold 0`` or ``inner fold 2 of outer fold 0``, for messages."""
    return f"outer fold {f}" if i is None else f"inner fold {i} of outer fold {f}"


def training_parts(splits: Splits) -> list[tuple[int, int | None, Rows]]:
    """Every training part a run fits on: ``(f, i, rows)``, ``i`` None for the outer one."""
    parts: list[tuple[int, int | None, Rows]] = []
    for f in range(splits.n_outer):
        parts.append((f, None, splits.train_test(f)[0]))
        parts += [(f, i, splits.inner_train_valid(f, i)[0]) for i in range(splits.n_inner)]
    return parts


class Tabular(TaskAdapter):
    """binary, multiclass (labels and class probabilities), regression, multitarget."""

    def __init__(
        self, frame: pd.DataFrame, columns: Sequence[ColumnSchema], spec: TaskSpec, log: Log
    ) -> None:
        super().__init__(frame, columns, spec, log)
        targets = spec.target_columns
        self.multi = spec.type == "multitarget"
        self.y = frame[targets].to_numpy() if self.multi else frame[targets[0]].to_numpy()
        self.classes = np.unique(self.y) if spec.type in ("binary", "multiclass") else None
        self.X = frame[[c.name for c in self.features]]

    def check(self, splits: Splits) -> None:
        if self.spec.type == "regression":
            bad = ~np.isfinite(self.y.astype(np.float64))
            if bad.any():
                raise InvalidInput(
                    f"the target has {int(bad.sum())} infinite values "
                    f"(first at row {int(np.flatnonzero(bad)[0])}); drop or clip them"
                )
        if self.classes is None:
            return
        for f, i, rows in training_parts(splits):
            present = np.unique(self.y[rows])
            if len(present) < 2:
                raise InvalidInput(
                    f"the training part of {part_name(f, i)} holds only class "
                    f"{show(present[0])}; classification needs two (stratify the split)",
                    details={"outer_fold": f, "inner_fold": i},
                )

    def inputs(self, rows: Rows, context: Rows | None = None) -> tuple[Any, Any]:
        """``X``, ``y`` of ``rows``; validation rows (``context`` given) of a class the
        training rows lack are left out (early stopping cannot score them)."""
        if context is not None and self.classes is not None:
            rows = rows[np.isin(self.y[rows], self.y[context])]
        return self.X.iloc[rows], self.y[rows]

    def evaluate(
        self, pipe: Pipeline, rows: Rows, seen: Rows, output: Any = None
    ) -> tuple[pd.DataFrame, Scores]:
        model = pipe.steps[-1][1]
        raw_proba, pred = self._predict(pipe, rows, output)
        out = pd.DataFrame({"row": rows})
        if self.multi:
            pred = np.asarray(pred).reshape(len(rows), -1)
            for j, name in enumerate(self.spec.target_columns):
                out[f"prediction_{name}"] = pred[:, j]
        else:
            out["prediction"] = pred
        proba = None
        if raw_proba is not None and self.classes is not None:
            proba = align_proba(raw_proba, model.classes_, self.classes)
            for j, c in enumerate(self.classes):
                out[f"proba_{c}"] = proba[:, j]
        scores = score_predictions(
            self.spec.metrics, self.y[rows], pred, proba, classes=self.classes, log=self.log
        )
        return out, scores

    def _predict(self, pipe: Pipeline, rows: Rows, output: Any) -> tuple[Any, Any]:
        """(probabilities or None, predictions) of ``rows``, from ``output`` where it has
        them (it is ``predict_proba``'s for classifiers, ``predict``'s otherwise)."""
        model = pipe.steps[-1][1]
        X = functools.cache(lambda: pipe[:-1].transform(self.X.iloc[rows]))
        if self.classes is None:
            return None, model.predict(X()) if output is None else output
        proba = model.predict_proba(X()) if output is None else output
        if getattr(model, "predicts_argmax_proba", False):
            return proba, model.classes_[np.argmax(proba, axis=1)]  # one pass over the trees
        return proba, model.predict(X())


def align_proba(proba: Any, model_classes: Any, classes: np.ndarray) -> np.ndarray:
    """``proba`` with one column per task class (0 for classes the model never saw)."""
    out = np.zeros((len(proba), len(classes)))
    index = {_plain(c): j for j, c in enumerate(classes)}
    for k, c in enumerate(model_classes):
        out[:, index[_plain(c)]] = np.asarray(proba)[:, k]
    return out


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class Anomaly(TaskAdapter):
    """Fitted on features only; ``score`` (higher = more anomalous) against the labels.

    Anomaly algorithms expose ``score_samples`` with that orientation (VAE does;
    scikit-learn's detectors, where higher means normal, would need a wrapper).
    """

    def __init__(
        self, frame: pd.DataFrame, columns: Sequence[ColumnSchema], spec: TaskSpec, log: Log
    ) -> None:
        super().__init__(frame, columns, spec, log)
        self.labels = frame[spec.target_columns[0]].to_numpy()
        self.X = frame[[c.name for c in self.features]]

    def inputs(self, rows: Rows, context: Rows | None = None) -> tuple[Any, Any]:
        return self.X.iloc[rows], None  # labels never reach a fit

    def evaluate(
        self, pipe: Pipeline, rows: Rows, seen: Rows, output: Any = None
    ) -> tuple[pd.DataFrame, Scores]:
        score = np.asarray(pipe.score_samples(self.X.iloc[rows]), dtype=np.float64)
        scores = score_predictions(self.spec.metrics, self.labels[rows], None, score, log=self.log)
        return pd.DataFrame({"row": rows, "score": score}), scores


def make_adapter(
    frame: pd.DataFrame, columns: Sequence[ColumnSchema], spec: TaskSpec, log: Log
) -> TaskAdapter:
    """The adapter of ``spec.type``."""
    if spec.type == "recommendation":
        from openmaas.ml.engine.recommendation import Recommendation

        return Recommendation(frame, columns, spec, log)
    if spec.type == "sequence":
        from openmaas.ml.engine.sequence import Sequence as SequenceAdapter

        return SequenceAdapter(frame, columns, spec, log)
    if spec.type == "anomaly":
        return Anomaly(frame, columns, spec, log)
    return Tabular(frame, columns, spec, log)
