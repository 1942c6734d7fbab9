"""Gradient-boosted decision trees with LightGBM.

Trained with ``lightgbm.train`` on the native API, so what runs is exactly
:meth:`LightGBM.booster_params` plus the data (a test checks it against a
plain script; only LightGBM's own per-round metric is switched off). Per
round (see :class:`Rounds`) the fit records the training and, given
``X_valid``/``y_valid``, validation loss in ``learning_curve_``
(``train_loss``/``valid_loss``: log loss to classify, squared error to
regress; on long fits only every few rounds), reports them to
``callbacks.on_epoch``, stops early when the validation loss has not improved
for ``early_stopping_rounds`` (then keeping the best round's trees, as
``lightgbm.early_stopping`` does; without early stopping every round is kept)
and hands the model text to ``callbacks.checkpoint`` every ``checkpoint_every``
rounds when the callbacks want one.
A fit whose ``callbacks.resume_state()`` returns a checkpoint continues from it
so the total number of rounds, early-stopping state and curve carry on, and
the result equals the uninterrupted fit's (with ``subsample`` or
``colsample_bytree`` below 1 the draws are reseeded every ``checkpoint_every``
rounds to make that so).
``fit(..., init_model=parent)`` continues boosting from a fitted parent.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any, Self

import numpy as np
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from openmaas.errors import InvalidFile, InvalidInput
from openmaas.ml.catalog._gbdt_rounds import Rounds, model_text
from openmaas.ml.catalog.base import Algorithm, HyperParameter, LearningCurve, TrainingCallbacks
from openmaas.ml.catalog.persist import read_json, write_json
from openmaas.ml.catalog.registry import register

_MODEL_FILE = "model.txt"
_CONFIG_FILE = "config.json"
_FIT_PARAMS = frozenset(
    {"X_valid", "y_valid", "callbacks", "categorical_features", "cardinalities", "init_model"}
)


def _classifier_only(self: LightGBM) -> bool:
    return self._is_classifier


@register
class LightGBM(Algorithm):
    name = "lightgbm"
    description = (
        "Gradient-boosted decision trees (LightGBM); handles missing values and "
        "categories natively, stops early on a validation part."
    )
    task_types = frozenset({"binary", "multiclass", "regression"})
    preprocessing = "native"
    iterative = True
    warm_start_capable = True
    predicts_argmax_proba = True

    booster_: Any
    classes_: np.ndarray
    best_iteration_: int
    learning_curve_: LearningCurve

    def __init__(
        self,
        task_type: str = "binary",
        n_estimators: int = 100,
        learning_rate: float = 0.1,
        num_leaves: int = 31,
        max_depth: int | None = None,
        min_child_samples: int = 20,
        subsample: float = 1.0,
        colsample_bytree: float = 1.0,
        reg_alpha: float = 0.0,
        reg_lambda: float = 0.0,
        early_stopping_rounds: int | None = 20,
        checkpoint_every: int = 50,
        num_threads: int = 1,
        random_state: int = 0,
    ) -> None:
        self.task_type = task_type
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_alpha = reg_alpha
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.checkpoint_every = checkpoint_every
        self.num_threads = num_threads
        self.random_state = random_state

    @classmethod
    def hyperparameters(cls) -> list[HyperParameter]:
        H = HyperParameter
        return [
            H(
                "n_estimators",
                "int",
                100,
                "Most boosting rounds (added to a parent's).",
                low=1,
                high=10_000,
                log=True,
            ),
            H(
                "learning_rate",
                "float",
                0.1,
                "Shrinkage of each tree.",
                low=1e-3,
                high=1.0,
                log=True,
            ),
            H("num_leaves", "int", 31, "Most leaves per tree.", low=2, high=4096, log=True),
            H(
                "max_depth",
                "int",
                None,
                "Deepest a tree may grow; null for no limit.",
                low=1,
                high=64,
                nullable=True,
            ),
            H(
                "min_child_samples",
                "int",
                20,
                "Fewest training rows in a leaf.",
                low=1,
                high=10_000,
                log=True,
            ),
            H(
                "subsample",
                "float",
                1.0,
                "Share of rows drawn (each round) for a tree.",
                low=0.1,
                high=1.0,
            ),
            H(
                "colsample_bytree",
                "float",
                1.0,
                "Share of features drawn for a tree.",
                low=0.1,
                high=1.0,
            ),
            H("reg_alpha", "float", 0.0, "L1 penalty on leaf values.", low=0.0, high=100.0),
            H("reg_lambda", "float", 0.0, "L2 penalty on leaf values.", low=0.0, high=100.0),
            H(
                "early_stopping_rounds",
                "int",
                20,
                "Stop when the validation loss has not improved for this many rounds "
                "(only with a validation part); null to never stop early.",
                low=1,
                high=10_000,
                nullable=True,
                tunable=False,
            ),
            H(
                "checkpoint_every",
                "int",
                50,
                "Rounds between checkpoints of a running job.",
                low=1,
                high=100_000,
                tunable=False,
            ),
            H("num_threads", "int", 1, "OpenMP threads.", low=1, high=256, tunable=False),
            H(
                "random_state",
                "int",
                0,
                "Seed for reproducible training.",
                low=0,
                high=2**31 - 1,
                tunable=False,
            ),
        ]

    def booster_params(self, n_classes: int | None = None) -> dict[str, Any]:
        """The ``lightgbm.train`` parameters for a target with ``n_classes`` (None: regression)."""
        if n_classes is None:
            objective: dict[str, Any] = {"objective": "regression", "metric": "l2"}
        elif n_classes <= 2:
            objective = {"objective": "binary", "metric": "binary_logloss"}
        else:
            objective = {
                "objective": "multiclass",
                "metric": "multi_logloss",
                "num_class": n_classes,
            }
        return {
            **objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "max_depth": -1 if self.max_depth is None else self.max_depth,
            "min_child_samples": self.min_child_samples,
            "bagging_fraction": self.subsample,
            "bagging_freq": 1 if self.subsample < 1.0 else 0,
            "feature_fraction": self.colsample_bytree,
            "lambda_l1": self.reg_alpha,
            "lambda_l2": self.reg_lambda,
            "num_threads": self.num_threads,
            "seed": self.random_state,
            "deterministic": True,
            "force_col_wise": True,
            "verbosity": -1,
        }

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> Self:
        """Fit; takes ``X_valid``, ``y_valid``, ``callbacks``, ``categorical_features``
        (output column indices holding category codes) and ``init_model`` (a fitted
        parent to continue from). ``cardinalities`` is accepted and unused.
        """
        unknown = set(fit_params) - _FIT_PARAMS
        if unknown:
            raise TypeError(f"unexpected fit parameters: {', '.join(sorted(unknown))}")
        self._validate_params()
        parent: LightGBM | None = fit_params.get("init_model")
        if not self._is_classifier:
            _check_regression_target(y)
        X, y = validate_data(
            self, X, y, ensure_all_finite="allow-nan", y_numeric=not self._is_classifier
        )
        if parent is not None:
            self._check_parent(parent)
        label = self._encode_target(y, parent)
        sets = self._datasets(X, label, fit_params)
        callbacks: TrainingCallbacks = fit_params.get("callbacks") or TrainingCallbacks()
        first = 0 if parent is None else parent.booster_.current_iteration()
        rounds = Rounds(
            self, callbacks, has_valid="valid" in sets, first=first,
            total=first + self.n_estimators, metric=self._metric(),
        )  # fmt: skip
        booster: Any = None if parent is None else parent.booster_
        state = callbacks.resume_state()
        if state is not None:
            booster = rounds.restore(state)
        self.booster_ = self._boost(booster, sets, rounds)
        self.learning_curve_ = rounds.curve
        best = self.booster_.best_iteration
        self.best_iteration_ = best if best > 0 else self.booster_.current_iteration()
        if rounds.valid_scores is not None and rounds.valid_scores[0] == self.best_iteration_:
            # LightGBM's own validation scores at the kept round are bit for bit what
            # predicting X_valid gives (tests check it): no second pass over the trees
            self.validation_output_ = self._output(rounds.valid_scores[1])
        return self

    def _datasets(self, X: Any, label: Any, fit_params: dict[str, Any]) -> dict[str, Any]:
        import lightgbm as lgb

        cats = fit_params.get("categorical_features")
        train = lgb.Dataset(
            X, label, categorical_feature=list(cats) if cats else "auto", free_raw_data=False
        )
        sets = {"train": train}
        if fit_params.get("X_valid") is not None:
            if fit_params.get("y_valid") is None:
                raise InvalidInput("X_valid was given without y_valid")
            X_valid = validate_data(
                self, fit_params["X_valid"], reset=False, ensure_all_finite="allow-nan"
            )
            y_valid = self._encode_target(np.asarray(fit_params["y_valid"]), None, fitted=True)
            sets["valid"] = lgb.Dataset(X_valid, y_valid, reference=train, free_raw_data=False)
        return sets

    def _boost(self, booster: Any, sets: dict[str, Any], rounds: Rounds) -> Any:
        """Train until ``rounds.total`` rounds or early stopping, from ``booster`` if given.

        Random draws restart with each ``lgb.train`` call, so with row or feature
        sampling each checkpoint interval is its own call with its own seed: a job
        resumed from a checkpoint then repeats the uninterrupted one exactly.
        """
        import lightgbm as lgb

        params = self.booster_params(len(self.classes_) if self._is_classifier else None)
        params["metric"] = "None"  # Rounds computes the loss, only at the rounds it records
        valid = {k: v for k, v in sets.items() if k != "train"}
        sampled = self.subsample < 1.0 or self.colsample_bytree < 1.0
        every = self.checkpoint_every
        while rounds.done < rounds.total and not rounds.stopped:
            done = rounds.done - rounds.first
            segment = every - done % every if sampled else rounds.total
            booster = lgb.train(
                {**params, "seed": self.random_state + (done // every if sampled else 0)},
                sets["train"],
                num_boost_round=min(segment, rounds.total - rounds.done),
                valid_sets=list(valid.values()) or None,
                valid_names=list(valid) or None,
                init_model=booster,
                callbacks=[rounds],
                keep_training_booster=True,  # no model text round trip after each call
            )
        if 0 < booster.best_iteration < booster.current_iteration():
            booster = lgb.Booster(model_str=model_text(booster))  # the best round's trees
        return booster

    def _metric(self) -> str:
        if not self._is_classifier:
            return "l2"
        return "binary_logloss" if len(self.classes_) <= 2 else "multi_logloss"

    def _encode_target(self, y: Any, parent: LightGBM | None, fitted: bool = False) -> Any:
        if not self._is_classifier:
            return _check_regression_target(y)
        check_classification_targets(y)
        if not fitted:
            self.classes_ = np.unique(y) if parent is None else parent.classes_
        known = np.isin(y, self.classes_)
        if not known.all():
            label = np.asarray(y)[~known][0].item()
            raise InvalidInput(
                f"target label {label!r} is not among the classes "
                f"{self.classes_.tolist()!r} the model was trained on",
                details={"label": str(label)},
            )
        return np.searchsorted(self.classes_, y)

    def _check_parent(self, parent: LightGBM) -> None:
        check_is_fitted(parent)
        if parent.n_features_in_ != self.n_features_in_ or parent._is_classifier != (
            self._is_classifier
        ):
            raise InvalidInput("the parent model was trained on other features or task type")

    def _raw(self, X: Any) -> Any:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan")
        return self.booster_.predict(X, num_iteration=self.best_iteration_)

    def _output(self, raw: Any) -> Any:
        """``predict_proba`` (classifiers) or ``predict`` (regressors) from the booster's
        prediction."""
        if not self._is_classifier:
            return raw
        return np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw

    def predict(self, X: Any) -> Any:
        check_is_fitted(self)
        if not self._is_classifier:
            return self._raw(X)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    @available_if(_classifier_only)  # type: ignore[untyped-decorator]
    def predict_proba(self, X: Any) -> Any:
        return self._output(self._raw(X))

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "booster_")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def save(self, directory: Path) -> None:
        check_is_fitted(self)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        # straight from LightGBM to the file: model_to_string serialises a model of more
        # than 1 MB twice (the first pass only measures it)
        self.booster_.save_model(directory / _MODEL_FILE)
        config: dict[str, Any] = {
            "algorithm": self.name,
            "params": self.get_params(),
            "n_features_in": int(self.n_features_in_),
            "best_iteration": int(self.best_iteration_),
            "learning_curve": self.learning_curve_.values,
            "lightgbm": importlib.metadata.version("lightgbm"),
        }
        if hasattr(self, "feature_names_in_"):
            config["feature_names_in"] = self.feature_names_in_.tolist()
        if self._is_classifier:
            config["classes"] = self.classes_.tolist()
            config["classes_dtype"] = self.classes_.dtype.str
        write_json(directory / _CONFIG_FILE, config)

    @classmethod
    def load(cls, directory: Path) -> Self:
        import lightgbm as lgb

        directory = Path(directory)
        config = read_json(directory / _CONFIG_FILE)
        if config.get("algorithm") != cls.name:
            raise InvalidFile(f"{directory} holds algorithm {config.get('algorithm')!r}")
        model = cls(**config["params"])
        model.booster_ = lgb.Booster(model_str=(directory / _MODEL_FILE).read_text())
        model.n_features_in_ = config["n_features_in"]
        model.best_iteration_ = config["best_iteration"]
        model.learning_curve_ = LearningCurve(config["learning_curve"])
        if "feature_names_in" in config:
            model.feature_names_in_ = np.asarray(config["feature_names_in"], dtype=object)
        if "classes" in config:
            dtype = np.dtype(config["classes_dtype"])
            model.classes_ = np.asarray(config["classes"], dtype=dtype)
        return model


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_regression_target(y: Any) -> Any:
    """``y`` as float64 if every value is finite and fits LightGBM's float32 labels."""
    values = np.asarray(y) if y is not None else None
    if values is None or values.dtype.kind not in "fiub":
        return y  # validate_data reports it
    values = values.astype(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raise InvalidInput(
            f"the target has {int(bad.sum())} missing or infinite values "
            f"(first at row {int(np.flatnonzero(bad)[0])}); drop or fill them",
            details={"rows": int(bad.sum())},
        )
    if values.size and np.abs(values).max() > _FLOAT32_MAX:
        raise InvalidInput(
            f"target values reach {np.abs(values).max():.3g}, beyond the float32 range "
            f"(±{_FLOAT32_MAX:.3g}) LightGBM trains on; rescale the target",
        )
    return values
