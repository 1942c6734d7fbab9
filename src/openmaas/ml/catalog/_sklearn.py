"""Shared plumbing for algorithms that wrap one scikit-learn estimator per task family.

A subclass declares its hyperparameters and builds the inner estimator for its
``task_type`` in ``_make_estimator``; this base validates input, fits, exposes
``classes_``/``predict_proba`` for classification and saves with skops against
``_trusted_types`` (plus the subclass itself).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any, ClassVar, Self

from sklearn.base import BaseEstimator
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from openmaas.errors import InvalidFile
from openmaas.ml.catalog.base import Algorithm
from openmaas.ml.catalog.persist import dump_skops, load_skops, read_json, write_json

_MODEL_FILE = "model.skops"
_CONFIG_FILE = "config.json"


def _classifier_only(self: SklearnAlgorithm) -> bool:
    return self._is_classifier


class SklearnAlgorithm(Algorithm):
    """An :class:`Algorithm` backed by ``estimator_``, a fitted scikit-learn estimator."""

    _trusted_types: ClassVar[frozenset[str]] = frozenset()

    def _make_estimator(self) -> BaseEstimator:
        raise NotImplementedError

    def _check_y(self, y: Any) -> Any:
        if self._is_classifier:
            from sklearn.utils.multiclass import check_classification_targets

            check_classification_targets(y)
        return y

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> Self:
        """Fit on ``X``, ``y``; there are no fit parameters (sample weights are not supported)."""
        if fit_params:
            raise TypeError(
                f"{type(self).__name__}.fit() got unexpected parameters: "
                f"{', '.join(sorted(fit_params))}"
            )
        self._validate_params()
        multi = self.task_type == "multitarget"
        X, y = validate_data(self, X, y, multi_output=multi, y_numeric=not self._is_classifier)
        y = self._check_y(y)
        self.estimator_ = self._make_estimator().fit(X, y)
        if self._is_classifier:
            self.classes_ = self.estimator_.classes_
        return self

    def predict(self, X: Any) -> Any:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.estimator_.predict(X)

    @available_if(_classifier_only)  # type: ignore[untyped-decorator]
    def predict_proba(self, X: Any) -> Any:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.estimator_.predict_proba(X)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "estimator_")

    def save(self, directory: Path) -> None:
        check_is_fitted(self)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        dump_skops(self, directory / _MODEL_FILE)
        write_json(
            directory / _CONFIG_FILE,
            {
                "algorithm": self.name,
                "params": self.get_params(),
                "scikit-learn": importlib.metadata.version("scikit-learn"),
            },
        )

    @classmethod
    def load(cls, directory: Path) -> Self:
        directory = Path(directory)
        config = read_json(directory / _CONFIG_FILE)
        if config.get("algorithm") != cls.name:
            raise InvalidFile(
                f"{directory} holds algorithm {config.get('algorithm')!r}, not {cls.name!r}"
            )
        own = f"{cls.__module__}.{cls.__qualname__}"
        model = load_skops(directory / _MODEL_FILE, cls._trusted_types | {own})
        if type(model) is not cls:
            raise InvalidFile(f"{directory} does not hold a {cls.__qualname__}")
        return model
