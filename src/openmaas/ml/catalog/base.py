"""The one estimator interface every catalog algorithm implements.

Algorithms are scikit-learn estimators: ``__init__`` only stores keyword
arguments (so ``clone`` and search work), fitted attributes end in ``_``,
``_parameter_constraints`` is checked once per ``fit`` and errors name the
parameter, what is allowed and what came in. On top of that each class
declares what the platform needs to use it without knowing it:

- ``name``, ``description``, ``task_types``: what users pick from;
- ``preprocessing``: the input encoding the engine builds in front of it,
  fitted inside each fold (``onehot`` = impute + scale + one-hot;
  ``ordinal`` = impute + scale numerics, categories as integer codes for
  embeddings; ``native`` = the library handles missing values and categories);
- ``hyperparameters()``: documented, typed, with defaults and ranges (the API
  shows them and validates user values against them);
- ``search_space()``: the distributions tuning samples from;
- ``save``/``load``: a safe, non-pickle format (LightGBM text, torch state dict
  + JSON config, skops for scikit-learn);
- ``iterative`` algorithms report a learning curve and take ``callbacks`` so
  the job runner can checkpoint, report progress and cancel.

One class serves every task type it declares: its first constructor argument
is ``task_type`` (set by the engine from the task, never by users, and not a
hyperparameter), which makes an instance a classifier (``binary``,
``multiclass``: ``classes_``, ``predict_proba``) or a regressor
(``regression``, ``multitarget``) for scikit-learn's tags and checks.
"""

from __future__ import annotations

import abc
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
from sklearn.base import BaseEstimator

from openmaas.errors import InvalidInput

TaskType = Literal[
    "binary", "multiclass", "regression", "multitarget", "anomaly", "recommendation", "sequence"
]
Preprocessing = Literal["onehot", "ordinal", "native", "none"]


@dataclass(frozen=True)
class HyperParameter:
    """One documented hyperparameter; also the JSON schema the API validates against."""

    name: str
    type: Literal["int", "float", "bool", "str"]
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    log: bool = False  # sample on a log scale when tuning
    tunable: bool = True
    nullable: bool = False  # ``None`` is allowed (its meaning is in ``doc``)

    def to_json_schema(self) -> dict[str, Any]:
        kinds = {"int": "integer", "float": "number", "bool": "boolean", "str": "string"}
        kind: str | list[str] = [kinds[self.type], "null"] if self.nullable else kinds[self.type]
        out: dict[str, Any] = {"type": kind, "default": self.default, "description": self.doc}
        if self.low is not None:
            out["minimum"] = self.low
        if self.high is not None:
            out["maximum"] = self.high
        if self.choices is not None:
            out["enum"] = list(self.choices)
        return out

    def allowed(self) -> str:
        """What values are allowed, in words: ``an integer in [1, 5000]``."""
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        else:
            text = {
                "int": "an integer",
                "float": "a number",
                "bool": "a boolean",
                "str": "a string",
            }[self.type]
            if self.low is not None and self.high is not None:
                text += f" in [{_num(self.low)}, {_num(self.high)}]"
            elif self.low is not None:
                text += f" >= {_num(self.low)}"
            elif self.high is not None:
                text += f" <= {_num(self.high)}"
        return text + " or null" if self.nullable else text

    def check(self, value: Any, *, algorithm: str) -> Any:
        """``value`` normalised (an int given for a float becomes a float), else InvalidInput.

        The message names the algorithm, the parameter, what is allowed and what came in.
        """
        if value is None and self.nullable:
            return None
        ok = _TYPE_CHECKS[self.type](value)
        if ok and self.type == "float":
            value = float(value)
            ok = math.isfinite(value)
        elif ok:  # plain Python values from numpy scalars, so results serialise as JSON
            value = {"int": int, "bool": bool, "str": str}[self.type](value)
        if ok and self.choices is not None:
            ok = value in self.choices
        if ok and self.low is not None:
            ok = value >= self.low
        if ok and self.high is not None:
            ok = value <= self.high
        if not ok:
            raise InvalidInput(
                f"hyperparameter {self.name!r} of algorithm {algorithm!r} must be "
                f"{self.allowed()}; got {value!r} ({type(value).__name__})",
                details={
                    "algorithm": algorithm,
                    "parameter": self.name,
                    "allowed": self.allowed(),
                    "value": value if isinstance(value, int | float | str | bool) else None,
                },
            )
        return value


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool | np.bool_),
    "float": lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_),
    "bool": lambda v: isinstance(v, bool | np.bool_),
    "str": lambda v: isinstance(v, str),
}


class TrainingCallbacks:
    """How an iterative fit talks to whoever runs it (the job runner, a test).

    The default does nothing. ``on_epoch`` may raise to stop training (e.g.
    cancellation); ``checkpoint`` receives opaque bytes to keep, and
    ``resume_state`` hands the last ones back when a fit restarts after a crash.
    A fit asks ``checkpoint_due`` before it serialises its state (megabytes for a
    long fit): by default, exactly when ``checkpoint`` is overridden.
    """

    def on_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        return None

    def checkpoint_due(self, epoch: int) -> bool:
        return type(self).checkpoint is not TrainingCallbacks.checkpoint

    def checkpoint(self, epoch: int, state: bytes) -> None:
        return None

    def resume_state(self) -> bytes | None:
        return None


@dataclass
class LearningCurve:
    """Metric values per epoch or boosting round: {"train_loss": [...], "valid_loss": [...]}.

    ``None`` marks a round whose value was not computed (long LightGBM fits compute
    their losses every few rounds), so entry ``i`` is always epoch or round ``i + 1``.
    """

    values: dict[str, list[float | None]] = field(default_factory=dict)

    def add(self, **metrics: float | None) -> None:
        for k, v in metrics.items():
            self.values.setdefault(k, []).append(None if v is None else float(v))


class Algorithm(BaseEstimator, abc.ABC):  # type: ignore[misc]
    name: ClassVar[str]
    description: ClassVar[str]
    task_types: ClassVar[frozenset[str]]
    preprocessing: ClassVar[Preprocessing] = "onehot"
    iterative: ClassVar[bool] = False
    warm_start_capable: ClassVar[bool] = False
    #: ``predict`` is ``classes_[argmax(predict_proba)]``: scoring derives it instead of
    #: predicting twice.
    predicts_argmax_proba: ClassVar[bool] = False
    #: A fit given ``X_valid`` may set ``validation_output_``: exactly what ``predict_proba``
    #: (classifiers) or ``predict`` (otherwise) returns for ``X_valid``, when training had
    #: it anyway (LightGBM keeps the validation scores up to date every round). The engine
    #: then takes the out-of-fold predictions from it instead of predicting a second time.

    @classmethod
    @abc.abstractmethod
    def hyperparameters(cls) -> list[HyperParameter]:
        """Every constructor argument but ``task_type``, documented."""

    @classmethod
    def search_space(cls) -> list[HyperParameter]:
        """What tuning samples; override to narrow ``low``/``high`` (``dataclasses.replace``)."""
        return [h for h in cls.hyperparameters() if h.tunable]

    @property
    def _is_classifier(self) -> bool:
        return getattr(self, "task_type", None) in ("binary", "multiclass")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        task_type = getattr(self, "task_type", None)
        if task_type in ("binary", "multiclass"):
            from sklearn.utils import ClassifierTags

            tags.estimator_type = "classifier"
            tags.classifier_tags = ClassifierTags()
        elif task_type in ("regression", "multitarget"):
            from sklearn.utils import RegressorTags

            tags.estimator_type = "regressor"
            tags.regressor_tags = RegressorTags()
            tags.target_tags.multi_output = task_type == "multitarget"
        tags.target_tags.required = task_type not in ("anomaly", None)
        return tags

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy for classifiers, R² for regressors (as scikit-learn's mixins)."""
        if self._is_classifier:
            from sklearn.metrics import accuracy_score

            return float(accuracy_score(y, self.predict(X), sample_weight=sample_weight))
        from sklearn.metrics import r2_score

        return float(r2_score(y, self.predict(X), sample_weight=sample_weight))

    def _validate_params(self) -> None:
        """Check ``task_type`` and every hyperparameter; call once at the start of ``fit``.

        Overrides scikit-learn's ``_parameter_constraints`` check with the
        declared :class:`HyperParameter` s, so the API, the CLI and ``fit`` share
        one set of rules and messages.
        """
        params = self.get_params(deep=False)
        task_type = params.pop("task_type", None)
        if "task_type" in self._get_param_names() and task_type not in self.task_types:
            raise InvalidInput(
                f"algorithm {self.name!r} does not support task type {task_type!r}; "
                f"it supports: {', '.join(sorted(self.task_types))}",
                details={"algorithm": self.name, "task_type": task_type},
            )
        for hp in self.hyperparameters():
            hp.check(params[hp.name], algorithm=self.name)

    @abc.abstractmethod
    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> Self:
        """Fit and return ``self``. Fit parameters the engine passes (see
        :func:`openmaas.ml.preprocessing.fit_pipeline`), and only these:

        - ``iterative``: ``X_valid``, ``y_valid`` (early stopping), ``callbacks``;
        - ``preprocessing`` ``ordinal``/``native``: ``categorical_features`` (output
          column indices holding category codes, 0 = missing or unseen) and
          ``cardinalities`` (codes per such column, 0 included);
        - ``warm_start_capable``: ``init_model``, a fitted parent of the same class.
        """

    @abc.abstractmethod
    def predict(self, X: Any) -> Any: ...

    @abc.abstractmethod
    def save(self, directory: Path) -> None:
        """Write the fitted model to ``directory`` in a safe (non-pickle) format."""

    @classmethod
    @abc.abstractmethod
    def load(cls, directory: Path) -> Self:
        """Read a model written by ``save``; never executes code from the files."""
