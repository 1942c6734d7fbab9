"""Bagging and AdaBoost over decision trees."""

from __future__ import annotations

from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    AdaBoostClassifier,
    AdaBoostRegressor,
    BaggingClassifier,
    BaggingRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from openmaas.ml.catalog._sklearn import SklearnAlgorithm
from openmaas.ml.catalog.base import HyperParameter
from openmaas.ml.catalog.persist import SKLEARN_TREE_TYPES
from openmaas.ml.catalog.registry import register

_SEED = HyperParameter(
    "random_state",
    "int",
    0,
    "Seed for reproducible ensembles.",
    low=0,
    high=2**32 - 1,
    tunable=False,
)


@register
class Bagging(SklearnAlgorithm):
    name = "bagging"
    description = (
        "Bagging: decision trees fitted on random subsets of rows and features, "
        "averaged (scikit-learn)."
    )
    task_types = frozenset({"binary", "multiclass", "regression", "multitarget"})
    preprocessing = "onehot"
    _trusted_types = SKLEARN_TREE_TYPES | {
        "sklearn.ensemble._bagging.BaggingClassifier",
        "sklearn.ensemble._bagging.BaggingRegressor",
    }

    def __init__(
        self,
        task_type: str = "binary",
        n_estimators: int = 10,
        max_samples: float = 1.0,
        max_features: float = 1.0,
        bootstrap: bool = True,
        max_depth: int | None = None,
        n_jobs: int = 1,
        random_state: int = 0,
    ) -> None:
        self.task_type = task_type
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.bootstrap = bootstrap
        self.max_depth = max_depth
        self.n_jobs = n_jobs
        self.random_state = random_state

    @classmethod
    def hyperparameters(cls) -> list[HyperParameter]:
        return [
            HyperParameter(
                "n_estimators", "int", 10, "Number of trees.", low=1, high=1000, log=True
            ),
            HyperParameter(
                "max_samples",
                "float",
                1.0,
                "Share of rows drawn for each tree.",
                low=0.01,
                high=1.0,
            ),
            HyperParameter(
                "max_features",
                "float",
                1.0,
                "Share of features drawn for each tree.",
                low=0.01,
                high=1.0,
            ),
            HyperParameter("bootstrap", "bool", True, "Draw rows with replacement."),
            HyperParameter(
                "max_depth",
                "int",
                None,
                "Deepest a tree may grow; null grows until leaves are pure.",
                low=1,
                high=100,
                nullable=True,
            ),
            HyperParameter(
                "n_jobs", "int", 1, "Trees fitted in parallel.", low=1, high=256, tunable=False
            ),
            _SEED,
        ]

    def _make_estimator(self) -> BaseEstimator:
        if self._is_classifier:
            ensemble, tree = BaggingClassifier, DecisionTreeClassifier
        else:
            ensemble, tree = BaggingRegressor, DecisionTreeRegressor
        return ensemble(
            tree(max_depth=self.max_depth),
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            max_features=self.max_features,
            bootstrap=self.bootstrap,
            n_jobs=self.n_jobs,
            random_state=self.random_state,
        )


@register
class AdaBoost(SklearnAlgorithm):
    name = "adaboost"
    description = (
        "AdaBoost: shallow decision trees fitted in turn on reweighted rows "
        "(SAMME to classify, AdaBoost.R2 to regress; scikit-learn)."
    )
    task_types = frozenset({"binary", "multiclass", "regression"})
    preprocessing = "onehot"
    _trusted_types = SKLEARN_TREE_TYPES | {
        "sklearn.ensemble._weight_boosting.AdaBoostClassifier",
        "sklearn.ensemble._weight_boosting.AdaBoostRegressor",
    }

    def __init__(
        self,
        task_type: str = "binary",
        n_estimators: int = 50,
        learning_rate: float = 1.0,
        max_depth: int | None = None,
        random_state: int = 0,
    ) -> None:
        self.task_type = task_type
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.random_state = random_state

    @classmethod
    def hyperparameters(cls) -> list[HyperParameter]:
        return [
            HyperParameter(
                "n_estimators", "int", 50, "Most boosting rounds.", low=1, high=2000, log=True
            ),
            HyperParameter(
                "learning_rate",
                "float",
                1.0,
                "Weight of each new tree.",
                low=1e-3,
                high=10.0,
                log=True,
            ),
            HyperParameter(
                "max_depth",
                "int",
                None,
                "Depth of each tree; null: 1 (stumps) to classify, 3 to regress.",
                low=1,
                high=32,
                nullable=True,
            ),
            _SEED,
        ]

    def _make_estimator(self) -> BaseEstimator:
        if self._is_classifier:
            tree = DecisionTreeClassifier(max_depth=self.max_depth or 1)
            return AdaBoostClassifier(
                tree,
                n_estimators=self.n_estimators,
                learning_rate=self.learning_rate,
                random_state=self.random_state,
            )
        return AdaBoostRegressor(
            DecisionTreeRegressor(max_depth=self.max_depth or 3),
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            random_state=self.random_state,
        )
