"""Regularised linear models: logistic regression to classify, ridge to regress."""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression, Ridge

from openmaas.ml.catalog._sklearn import SklearnAlgorithm
from openmaas.ml.catalog.base import HyperParameter
from openmaas.ml.catalog.registry import register


@register
class Linear(SklearnAlgorithm):
    name = "linear"
    description = (
        "L2-regularised linear model: logistic regression (multinomial for several "
        "classes) for classification, ridge regression for one or several targets."
    )
    task_types = frozenset({"binary", "multiclass", "regression", "multitarget"})
    preprocessing = "onehot"
    _trusted_types: ClassVar[frozenset[str]] = frozenset(
        {
            "sklearn.linear_model._logistic.LogisticRegression",
            "sklearn.linear_model._ridge.Ridge",
        }
    )

    def __init__(
        self,
        task_type: str = "binary",
        alpha: float = 1.0,
        fit_intercept: bool = True,
        max_iter: int = 1000,
        tol: float = 1e-4,
    ) -> None:
        self.task_type = task_type
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol

    @classmethod
    def hyperparameters(cls) -> list[HyperParameter]:
        return [
            HyperParameter(
                "alpha",
                "float",
                1.0,
                "L2 penalty strength; larger is simpler (logistic regression uses C = 1/alpha).",
                low=1e-6,
                high=1e4,
                log=True,
            ),
            HyperParameter("fit_intercept", "bool", True, "Learn a constant term.", tunable=False),
            HyperParameter(
                "max_iter",
                "int",
                1000,
                "Most solver iterations (logistic regression only).",
                low=10,
                high=100_000,
                tunable=False,
            ),
            HyperParameter(
                "tol",
                "float",
                1e-4,
                "Solver stopping tolerance.",
                low=1e-10,
                high=1e-1,
                log=True,
                tunable=False,
            ),
        ]

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> Self:
        super().fit(X, y, **fit_params)
        # Ridge solves in closed form: one step, so ``n_iter_`` is 1.
        n_iter = getattr(self.estimator_, "n_iter_", None)
        self.n_iter_ = 1 if n_iter is None else int(np.max(n_iter))
        return self

    def _make_estimator(self) -> BaseEstimator:
        if self._is_classifier:
            return LogisticRegression(
                C=1.0 / self.alpha,
                fit_intercept=self.fit_intercept,
                max_iter=self.max_iter,
                tol=self.tol,
            )
        return Ridge(alpha=self.alpha, fit_intercept=self.fit_intercept, tol=self.tol)
