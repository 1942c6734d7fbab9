"""Random forest and extra trees, for classification and one or several targets."""

from __future__ import annotations

from typing import Any, ClassVar

from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

from openmaas.ml.catalog._sklearn import SklearnAlgorithm
from openmaas.ml.catalog.base import HyperParameter
from openmaas.ml.catalog.persist import SKLEARN_TREE_TYPES
from openmaas.ml.catalog.registry import register

_TREE_PARAMS = [
    HyperParameter("n_estimators", "int", 100, "Number of trees.", low=1, high=5000, log=True),
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
        "min_samples_leaf", "int", 1, "Fewest training rows in a leaf.", low=1, high=1000, log=True
    ),
    HyperParameter(
        "max_features",
        "float",
        None,
        "Share of features tried at each split; null: sqrt(n) to classify, all to regress.",
        low=0.01,
        high=1.0,
        nullable=True,
    ),
    HyperParameter(
        "n_jobs",
        "int",
        1,
        "Threads used to grow and apply trees.",
        low=1,
        high=256,
        tunable=False,
    ),
    HyperParameter(
        "random_state",
        "int",
        0,
        "Seed for reproducible trees.",
        low=0,
        high=2**32 - 1,
        tunable=False,
    ),
]


class _Forest(SklearnAlgorithm):
    task_types = frozenset({"binary", "multiclass", "regression", "multitarget"})
    preprocessing = "onehot"
    _classes: ClassVar[tuple[type[BaseEstimator], type[BaseEstimator]]]
    _bootstrap: ClassVar[bool]

    def __init__(
        self,
        task_type: str = "binary",
        n_estimators: int = 100,
        max_depth: int | None = None,
        min_samples_leaf: int = 1,
        max_features: float | None = None,
        n_jobs: int = 1,
        random_state: int = 0,
    ) -> None:
        self.task_type = task_type
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.n_jobs = n_jobs
        self.random_state = random_state

    @classmethod
    def hyperparameters(cls) -> list[HyperParameter]:
        return list(_TREE_PARAMS)

    def _make_estimator(self) -> BaseEstimator:
        classifier, regressor = self._classes
        params: dict[str, Any] = {
            "n_estimators": self.n_estimators,
            "max_depth": self.max_depth,
            "min_samples_leaf": self.min_samples_leaf,
            "n_jobs": self.n_jobs,
            "random_state": self.random_state,
        }
        if self.max_features is not None:
            params["max_features"] = self.max_features
        return (classifier if self._is_classifier else regressor)(**params)


@register
class RandomForest(_Forest):
    name = "random_forest"
    description = "Random forest: bootstrapped decision trees, averaged (scikit-learn)."
    _classes = (RandomForestClassifier, RandomForestRegressor)
    _trusted_types = SKLEARN_TREE_TYPES | {
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.RandomForestRegressor",
    }


@register
class ExtraTrees(_Forest):
    name = "extra_trees"
    description = (
        "Extremely randomised trees: random split thresholds on the full sample, "
        "averaged (scikit-learn)."
    )
    _classes = (ExtraTreesClassifier, ExtraTreesRegressor)
    _trusted_types = SKLEARN_TREE_TYPES | {
        "sklearn.ensemble._forest.ExtraTreesClassifier",
        "sklearn.ensemble._forest.ExtraTreesRegressor",
    }
