"""Recurrent networks (Elman RNN, GRU, LSTM) over windows of past values.

``fit(X, y)`` takes windows as :func:`~.windows.sliding_windows` builds them:
``X`` is ``(n, context_length)`` for one variable or ``(n, context_length,
features)``; ``y`` holds what follows each window:

- numbers, ``(n, horizon)`` or ``(n,)``: forecasting; trained with squared
  error on standardised values (inputs standardised per feature), predicted
  in the target's units and shape;
- labels (strings, booleans, categories), ``(n,)`` or ``(n, horizon)``:
  classifying a sequence (or its next ``horizon`` steps); ``classes_`` and
  ``predict_proba`` as for classifiers.

The last hidden state of the top layer feeds a linear head for all steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import torch
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, check_is_fitted
from torch import nn
from torch.nn import functional as F

from openmaas.errors import InvalidInput
from openmaas.ml.catalog.base import HyperParameter, TrainingCallbacks
from openmaas.ml.catalog.registry import register
from openmaas.ml.catalog.torch.estimator import TorchAlgorithm, reject_unknown
from openmaas.ml.catalog.torch.hyperparameters import training_hyperparameters
from openmaas.ml.catalog.torch.inputs import decode_labels, encode_labels

__all__ = ["RNN", "RNNNet"]

CELLS: dict[str, Callable[..., nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class RNNNet(nn.Module):
    def __init__(
        self, n_features: int, cell: str, hidden_size: int, num_layers: int, dropout: float,
        out_dim: int,
    ) -> None:  # fmt: skip
        super().__init__()
        self.rnn = CELLS[cell](
            n_features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(hidden_size, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        last: torch.Tensor = self.head(out[:, -1])
        return last


def _classifies(self: RNN) -> bool:
    """Whether the fitted target is labels (so ``predict_proba`` exists)."""
    return hasattr(self, "classes_")


@register
class RNN(TorchAlgorithm):
    name = "rnn"
    description = (
        "Recurrent network (PyTorch; Elman RNN, GRU or LSTM cell) forecasting the next "
        "horizon values from a window of past values, or classifying a sequence."
    )
    task_types = frozenset({"sequence"})
    preprocessing = "none"

    def __init__(
        self,
        task_type: str = "sequence",
        cell: str = "gru",
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
        epochs: int = 100,
        batch_size: int = 128,
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
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
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
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
        hp = HyperParameter
        return [
            hp(
                "cell",
                "str",
                "gru",
                "Recurrent cell: rnn (Elman, tanh), gru or lstm.",
                choices=tuple(CELLS),
            ),
            hp("hidden_size", "int", 64, "Units of the hidden state.", low=4, high=1024, log=True),
            hp("num_layers", "int", 1, "Stacked recurrent layers.", low=1, high=4),
            hp("dropout", "float", 0.0, "Dropout between stacked layers.", low=0.0, high=0.9),
            *training_hyperparameters(),
        ]

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        X_valid: Any = None,
        y_valid: Any = None,
        callbacks: TrainingCallbacks | None = None,
        init_model: RNN | None = None,
        init_from: Any = None,
        **fit_params: Any,
    ) -> Self:
        """Fit on windows ``X`` and what follows them, ``y`` (see the module docstring)."""
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
        )

    # -- data ----------------------------------------------------------------------------

    def _windows(self, X: Any, reset: bool) -> torch.Tensor:
        data = check_array(X, allow_nd=True, dtype=np.float64)
        if data.ndim == 2:
            data = data[:, :, None]
        if data.ndim != 3:
            raise InvalidInput(
                f"X must be (n, context) or (n, context, features); got {data.shape}"
            )
        if reset:
            self.n_features_in_ = data.shape[2]
            flat = data.reshape(-1, data.shape[2])
            self.x_mean_ = flat.mean(axis=0)
            self.x_scale_ = np.where(flat.std(axis=0) > 1e-12, flat.std(axis=0), 1.0)
        elif data.shape[2] != self.n_features_in_:
            raise InvalidInput(
                f"X has {data.shape[2]} features per step, but the model was fitted with "
                f"{self.n_features_in_}"
            )
        return torch.from_numpy(((data - self.x_mean_) / self.x_scale_).astype(np.float32))

    def _prepare(self, X: Any, y: Any, reset: bool, **fit_params: Any) -> list[Any]:
        x = self._windows(X, reset)
        target = np.asarray(y)
        if len(target) != len(x):
            raise InvalidInput(f"X has {len(x)} windows but y has {len(target)} rows")
        if reset:
            self.y_ndim_ = target.ndim
            self.horizon_ = 1 if target.ndim == 1 else target.shape[1]
            self.forecasting_ = target.dtype.kind in "fiu"
            if self.forecasting_:
                values = _finite(target)
                self.y_mean_, self.y_scale_ = float(values.mean()), float(values.std()) or 1.0
            else:
                self.classes_ = np.unique(target)
                if len(self.classes_) < 2:
                    raise InvalidInput("the target has 1 class; classification needs at least 2")
        target = target.reshape(len(x), -1)
        if target.shape[1] != self.horizon_:
            raise InvalidInput(f"y has {target.shape[1]} steps; the model predicts {self.horizon_}")
        if self.forecasting_:
            scaled = (_finite(target) - self.y_mean_) / self.y_scale_
            return [x, torch.from_numpy(scaled.astype(np.float32))]
        index = np.searchsorted(self.classes_, target).clip(max=len(self.classes_) - 1)
        if (self.classes_[index] != target).any():
            raise InvalidInput("y holds a class unseen when the model was first fitted")
        return [x, torch.from_numpy(index.astype(np.int64))]

    def _build_module(self) -> nn.Module:
        out = self.horizon_ * (1 if self.forecasting_ else len(self.classes_))
        return RNNNet(
            self.n_features_in_, self.cell, self.hidden_size, self.num_layers, self.dropout, out
        )

    # -- training ------------------------------------------------------------------------

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.forecasting_:
            return F.mse_loss(out, target)
        return F.cross_entropy(out.reshape(-1, len(self.classes_)), target.reshape(-1))

    def _batch_loss(
        self, module: nn.Module, batch: Sequence[Any], generator: torch.Generator
    ) -> torch.Tensor:
        return self._loss(module(batch[0]), batch[1])

    def _evaluate(
        self, module: nn.Module, data: Sequence[Any], generator: torch.Generator
    ) -> dict[str, float]:
        out = module(data[0])
        loss = float(self._loss(out, data[1]))
        if self.forecasting_:
            return {"loss": loss, "rmse": loss**0.5 * self.y_scale_}
        labels = out.reshape(len(out), self.horizon_, -1).argmax(dim=2)
        return {"loss": loss, "accuracy": float((labels == data[1]).float().mean())}

    # -- prediction ----------------------------------------------------------------------

    def _raw(self, X: Any) -> torch.Tensor:
        check_is_fitted(self)
        return self._infer(lambda b: self.module_(b[0]), [self._windows(X, reset=False)])

    def predict(self, X: Any) -> npt.NDArray[Any]:
        """Forecasts ``(n, horizon)`` (or labels), shaped like the ``y`` given to ``fit``."""
        out = self._raw(X).double()
        if self.forecasting_:
            pred = out.numpy() * self.y_scale_ + self.y_mean_
        else:
            pred = self.classes_[out.reshape(len(out), self.horizon_, -1).argmax(dim=2).numpy()]
        return pred.reshape(-1) if self.y_ndim_ == 1 else pred

    @available_if(_classifies)  # type: ignore[untyped-decorator]
    def predict_proba(self, X: Any) -> npt.NDArray[np.float64]:
        """Class probabilities ``(n, classes)``, or ``(n, horizon, classes)`` for several steps."""
        out = self._raw(X).double()
        proba = out.reshape(len(out), self.horizon_, -1).softmax(dim=2).numpy()
        return proba[:, 0] if self.y_ndim_ == 1 else proba

    # -- files ---------------------------------------------------------------------------

    def _fitted_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "x_mean": self.x_mean_.tolist(), "x_scale": self.x_scale_.tolist(),
            "y_ndim": self.y_ndim_, "horizon": self.horizon_, "forecasting": self.forecasting_,
        }  # fmt: skip
        if self.forecasting_:
            out.update(y_mean=self.y_mean_, y_scale=self.y_scale_)
        else:
            out["classes"] = encode_labels(self.classes_)
        return out

    def _restore_fitted(self, config: dict[str, Any]) -> None:
        self.x_mean_ = np.asarray(config["x_mean"], dtype=np.float64)
        self.x_scale_ = np.asarray(config["x_scale"], dtype=np.float64)
        self.y_ndim_, self.horizon_ = int(config["y_ndim"]), int(config["horizon"])
        self.forecasting_ = bool(config["forecasting"])
        if self.forecasting_:
            self.y_mean_, self.y_scale_ = float(config["y_mean"]), float(config["y_scale"])
        else:
            self.classes_ = decode_labels(config["classes"])


def _finite(values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    out = np.asarray(values, dtype=np.float64)
    if not np.isfinite(out).all():
        raise InvalidInput("the target holds missing or infinite values; drop or fill them")
    return out
