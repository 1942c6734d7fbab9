"""Factorization machine (Rendle, 2010) for sparse and categorical, CTR-style data.

    y(x) = b + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j

Each input gets a weight ``w_i`` and a factor vector ``v_i`` of length
``n_factors``; the pairwise term is computed in O(k n) as
``0.5 * sum_f ((sum_i v_if x_i)^2 - sum_i v_if^2 x_i^2)``. Numeric columns are
inputs with their value; a categorical column (``categorical_features``, as
the ``ordinal`` preprocessing writes codes) is a field whose code picks its
input with value 1, exactly one-hot encoding without building it. Sparse
matrices (CSR and the like) are taken as they are and multiplied sparsely.
Binary classification (logistic loss) and regression (squared error on the
standardised target).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import torch
from scipy.special import expit
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn
from torch.nn import functional as F

from openmaas.errors import InvalidInput
from openmaas.ml.catalog.base import HyperParameter, TrainingCallbacks
from openmaas.ml.catalog.registry import register
from openmaas.ml.catalog.torch.estimator import TorchAlgorithm, reject_unknown
from openmaas.ml.catalog.torch.hyperparameters import training_hyperparameters
from openmaas.ml.catalog.torch.inputs import (
    check_categorical,
    decode_labels,
    encode_labels,
    float_tensor,
    split_categorical,
)

__all__ = ["FMNet", "FactorizationMachine"]


class FMNet(nn.Module):
    """Second-order FM over numeric inputs (dense or sparse COO) and categorical fields."""

    offsets: torch.Tensor  # first row of each field in the shared tables

    def __init__(self, n_numeric: int, cardinalities: Sequence[int], n_factors: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1))
        self.weight = nn.Parameter(torch.zeros(n_numeric, 1))
        self.factors = nn.Parameter(torch.randn(n_numeric, n_factors) * 0.01)
        offsets: Any = np.cumsum([0, *cardinalities])[:-1]
        self.register_buffer("offsets", torch.as_tensor(offsets, dtype=torch.int64))
        total = int(sum(cardinalities))
        self.cat_weight = nn.Embedding(max(total, 1), 1)
        self.cat_factors = nn.Embedding(max(total, 1), n_factors)
        nn.init.zeros_(self.cat_weight.weight)
        nn.init.normal_(self.cat_factors.weight, std=0.01)

    def forward(self, numeric: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        if numeric.is_sparse:
            squared = torch.sparse_coo_tensor(
                numeric.indices(),
                numeric.values().square(),
                numeric.shape,
                is_coalesced=True,
                check_invariants=False,
            )
            linear = torch.sparse.mm(numeric, self.weight)[:, 0]
            total = torch.sparse.mm(numeric, self.factors)
            squares = torch.sparse.mm(squared, self.factors.square())
        else:
            linear = (numeric @ self.weight)[:, 0]
            total = numeric @ self.factors
            squares = numeric.square() @ self.factors.square()
        if codes.shape[1]:
            rows = codes + self.offsets
            linear = linear + self.cat_weight(rows).sum(dim=(1, 2))
            embedded = self.cat_factors(rows)  # (n, fields, k)
            total = total + embedded.sum(dim=1)
            squares = squares + embedded.square().sum(dim=1)
        out: torch.Tensor = self.bias + linear + 0.5 * (total.square() - squares).sum(dim=1)
        return out


def _classifier_only(self: FactorizationMachine) -> bool:
    return self._is_classifier


@register
class FactorizationMachine(TorchAlgorithm):
    name = "fm"
    description = (
        "Factorization machine (PyTorch): linear terms plus all pairwise interactions "
        "through low-rank factors; for sparse, high-cardinality categorical data."
    )
    task_types = frozenset({"binary", "regression"})
    preprocessing = "ordinal"
    _supports_sparse = True

    def __init__(
        self,
        task_type: str = "binary",
        n_factors: int = 8,
        epochs: int = 100,
        batch_size: int = 256,
        optimizer: str = "adam",
        learning_rate: float = 1e-2,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        lr_schedule: str = "constant",
        lr_decay: float = 0.1,
        lr_decay_epochs: int = 10,
        patience: int = 10,
        validation_fraction: float = 0.1,
        max_gradient_norm: float | None = 1e4,
        clip_gradient_norm: float | None = None,
        random_state: int = 0,
        n_threads: int = 1,
    ) -> None:
        self.task_type = task_type
        self.n_factors = n_factors
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.lr_decay = lr_decay
        self.lr_decay_epochs = lr_decay_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.max_gradient_norm = max_gradient_norm
        self.clip_gradient_norm = clip_gradient_norm
        self.random_state = random_state
        self.n_threads = n_threads

    @classmethod
    def hyperparameters(cls) -> list[HyperParameter]:
        return [
            HyperParameter(
                "n_factors",
                "int",
                8,
                "Length k of each input's factor vector.",
                low=1,
                high=256,
                log=True,
            ),
            *training_hyperparameters(batch_size=256, learning_rate=1e-2),
        ]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        if tags.classifier_tags is not None:
            tags.classifier_tags.multi_class = False
        return tags

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        X_valid: Any = None,
        y_valid: Any = None,
        callbacks: TrainingCallbacks | None = None,
        init_model: FactorizationMachine | None = None,
        init_from: Any = None,
        categorical_features: Sequence[int] | None = None,
        cardinalities: Sequence[int] | None = None,
        **fit_params: Any,
    ) -> Self:
        """Fit on ``X``, ``y``; keyword arguments as for :class:`~.dnn.DNN`."""
        reject_unknown(fit_params)
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        return self._fit(
            X,
            y,
            X_valid=X_valid,
            y_valid=y_valid,
            callbacks=callbacks,
            init_model=init_model,
            init_from=init_from,
            categorical_features=categorical_features,
            cardinalities=cardinalities,
        )

    def _inputs(self, X: Any, reset: bool, y: Any = None, **cat: Any) -> tuple[Any, Any, Any]:
        has_cats = bool(cat.get("categorical_features")) or bool(
            getattr(self, "categorical_features_", [])
        )
        finite: Any = "allow-nan" if has_cats else True
        kw: dict[str, Any] = {
            "accept_sparse": "csr",
            "ensure_all_finite": finite,
            "dtype": np.float64,
            "reset": reset,
        }
        if y is None:
            X = validate_data(self, X, **kw)
        else:
            X, y = validate_data(self, X, y, y_numeric=not self._is_classifier, **kw)
        if reset:
            if sp.issparse(X) and cat.get("categorical_features"):
                raise InvalidInput("categorical_features need dense input, not a sparse matrix")
            self.categorical_features_, self.cardinalities_ = check_categorical(
                X.shape[1],
                cat.get("categorical_features"),
                cat.get("cardinalities"),
                X if not sp.issparse(X) else np.empty((0, 0)),
            )
        if sp.issparse(X):
            return float_tensor(X), torch.zeros((X.shape[0], 0), dtype=torch.int64), y
        numeric, codes = split_categorical(X, self.categorical_features_, self.cardinalities_)
        return numeric, codes, y

    def _prepare(self, X: Any, y: Any, reset: bool, **fit_params: Any) -> list[Any]:
        numeric, codes, y = self._inputs(X, reset, y, **fit_params)
        if self._is_classifier:
            if reset:
                check_classification_targets(y)
                kind = type_of_target(y, input_name="y")
                if kind != "binary":
                    raise ValueError(
                        f"Only binary classification is supported. The type of the target is "
                        f"{kind}."
                    )
                self.classes_ = np.unique(y)
                if len(self.classes_) < 2:
                    raise InvalidInput(
                        "the target has 1 class; binary classification needs 2 classes"
                    )
            target = (y == self.classes_[1]).astype(np.float32)
        else:
            values = np.asarray(y, dtype=np.float64)
            if reset:
                self.y_mean_, self.y_scale_ = float(values.mean()), float(values.std()) or 1.0
            target = ((values - self.y_mean_) / self.y_scale_).astype(np.float32)
        return [numeric, codes, torch.from_numpy(target)]

    def _build_module(self) -> nn.Module:
        n_numeric = self.n_features_in_ - len(self.categorical_features_)
        return FMNet(n_numeric, self.cardinalities_, self.n_factors)

    def _batch_loss(
        self, module: nn.Module, batch: Sequence[Any], generator: torch.Generator
    ) -> torch.Tensor:
        numeric, codes, target = batch
        out = module(numeric, codes)
        if self._is_classifier:
            return F.binary_cross_entropy_with_logits(out, target)
        return F.mse_loss(out, target)

    def _evaluate(
        self, module: nn.Module, data: Sequence[Any], generator: torch.Generator
    ) -> dict[str, float]:
        numeric, codes, target = data
        out = module(numeric, codes)
        if self._is_classifier:
            return {
                "loss": float(F.binary_cross_entropy_with_logits(out, target)),
                "accuracy": float(((out > 0).float() == target).float().mean()),
            }
        loss = F.mse_loss(out, target)
        return {"loss": float(loss), "rmse": float(loss.sqrt()) * self.y_scale_}

    def _raw(self, X: Any) -> npt.NDArray[np.float64]:
        """The model's output per row: the logit (classification) or the standardised value."""
        check_is_fitted(self)
        numeric, codes, _ = self._inputs(X, reset=False)
        return self._infer(lambda b: self.module_(*b), [numeric, codes]).double().numpy()

    def predict(self, X: Any) -> npt.NDArray[Any]:
        out = self._raw(X)
        if self._is_classifier:
            return self.classes_[(out > 0).astype(np.int64)]
        return out * self.y_scale_ + self.y_mean_

    @available_if(_classifier_only)  # type: ignore[untyped-decorator]
    def decision_function(self, X: Any) -> npt.NDArray[np.float64]:
        """The logit of the second class of ``classes_``."""
        return self._raw(X)

    @available_if(_classifier_only)  # type: ignore[untyped-decorator]
    def predict_proba(self, X: Any) -> npt.NDArray[np.float64]:
        p = expit(self._raw(X))
        return np.column_stack([1.0 - p, p])

    def _fitted_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "categorical_features": self.categorical_features_,
            "cardinalities": self.cardinalities_,
        }
        if self._is_classifier:
            out["classes"] = encode_labels(self.classes_)
        else:
            out["y_mean"], out["y_scale"] = self.y_mean_, self.y_scale_
        return out

    def _restore_fitted(self, config: dict[str, Any]) -> None:
        self.categorical_features_ = [int(c) for c in config["categorical_features"]]
        self.cardinalities_ = [int(c) for c in config["cardinalities"]]
        if self._is_classifier:
            self.classes_ = decode_labels(config["classes"])
        else:
            self.y_mean_, self.y_scale_ = float(config["y_mean"]), float(config["y_scale"])
