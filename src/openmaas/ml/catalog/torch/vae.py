"""Variational autoencoder for anomaly detection and representation learning.

An MLP encoder maps a row (standardised with the training means and
deviations) to a Gaussian ``N(mean, exp(log_var))`` over ``n_components``
latent dimensions; an MLP decoder maps a latent sample back. Training
minimises the negative ELBO: ``0.5 * squared reconstruction error + beta * KL``
per row (a unit-variance Gaussian likelihood).

Scores are deterministic (they decode the latent mean) and **higher means
more anomalous**, unlike scikit-learn's outlier detectors:

- ``anomaly_score="reconstruction"``: mean squared reconstruction error per feature;
- ``anomaly_score="elbo"``: ``0.5 * squared error + KL``, the negative ELBO at the mean.

``score_samples`` and ``decision_function`` both return it; ``predict`` flags
(1) the rows scoring above the ``1 - contamination`` quantile of the training
scores (``threshold_``), else 0; ``transform`` gives the latent means
(embeddings). The anomaly label a task carries is ignored by ``fit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self, cast

import numpy as np
import numpy.typing as npt
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from openmaas.ml.catalog.base import HyperParameter, TrainingCallbacks
from openmaas.ml.catalog.registry import register
from openmaas.ml.catalog.torch.estimator import TorchAlgorithm, reject_unknown
from openmaas.ml.catalog.torch.hyperparameters import training_hyperparameters
from openmaas.ml.catalog.torch.inputs import float_tensor
from openmaas.ml.catalog.torch.layers import ACTIVATIONS, mlp

__all__ = ["VAE", "VAENet"]


class VAENet(nn.Module):
    center: torch.Tensor  # the training means (scaled), subtracted from every input

    def __init__(
        self, n_features: int, n_components: int, depth: int, width: int, activation: str,
        dropout: float,
    ) -> None:  # fmt: skip
        super().__init__()
        self.register_buffer("center", torch.zeros(n_features))  # subtracted from the input
        self.encoder = mlp(n_features, depth, width, activation, dropout)
        hidden = width if depth > 0 else n_features
        self.mean = nn.Linear(hidden, n_components)
        self.log_var = nn.Linear(hidden, n_components)
        self.decoder = nn.Sequential(
            mlp(n_components, depth, width, activation, dropout),
            nn.Linear(width if depth > 0 else n_components, n_features),
        )

    def centred(self, x: torch.Tensor) -> torch.Tensor:
        return (x.to_dense() if x.is_sparse else x) - self.center

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of the latent Gaussian of centred rows ``x``."""
        h = self.encoder(x)
        return self.mean(h), self.log_var(h).clamp(-30.0, 20.0)

    def terms(
        self, x: torch.Tensor, noise: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row: squared reconstruction error (summed over features) and KL divergence."""
        x = self.centred(x)
        mean, log_var = self.encode(x)
        z = mean if noise is None else mean + noise * (0.5 * log_var).exp()
        error = (self.decoder(z) - x).square().sum(dim=1)
        kl = 0.5 * (mean.square() + log_var.exp() - 1.0 - log_var).sum(dim=1)
        return error, kl


@register
class VAE(ClassNamePrefixFeaturesOutMixin, TransformerMixin, TorchAlgorithm):  # type: ignore[misc]
    name = "vae"
    description = (
        "Variational autoencoder (PyTorch): anomaly score from the reconstruction error or "
        "the ELBO (higher = more anomalous); latent means as embeddings."
    )
    task_types = frozenset({"anomaly"})
    preprocessing = "onehot"
    _supports_sparse = True

    def __init__(
        self,
        task_type: str = "anomaly",
        n_components: int = 8,
        depth: int = 1,
        width: int = 64,
        activation: str = "relu",
        dropout: float = 0.0,
        beta: float = 1.0,
        anomaly_score: str = "reconstruction",
        contamination: float = 0.05,
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
        self.n_components = n_components
        self.depth = depth
        self.width = width
        self.activation = activation
        self.dropout = dropout
        self.beta = beta
        self.anomaly_score = anomaly_score
        self.contamination = contamination
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
                "n_components",
                "int",
                8,
                "Latent dimensions (the embedding size).",
                low=1,
                high=256,
                log=True,
            ),
            hp(
                "depth", "int", 1, "Hidden layers of the encoder and of the decoder.", low=0, high=6
            ),
            hp("width", "int", 64, "Units per hidden layer.", low=4, high=1024, log=True),
            hp(
                "activation",
                "str",
                "relu",
                "Activation of the hidden layers.",
                choices=tuple(ACTIVATIONS),
            ),
            hp("dropout", "float", 0.0, "Dropout rate after each hidden layer.", low=0.0, high=0.9),
            hp("beta", "float", 1.0, "Weight of the KL term (beta-VAE).", low=0.0, high=100.0),
            hp(
                "anomaly_score",
                "str",
                "reconstruction",
                "Anomaly score: reconstruction (mean squared error per feature) or elbo "
                "(negative ELBO at the latent mean); higher = more anomalous.",
                choices=("reconstruction", "elbo"),
                tunable=False,
            ),
            hp(
                "contamination",
                "float",
                0.05,
                "Share of training rows predict flags as anomalies (sets threshold_).",
                low=0.0,
                high=0.5,
                tunable=False,
            ),
            *training_hyperparameters(),
        ]

    @property
    def _n_features_out(self) -> int:
        return self.n_components

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        X_valid: Any = None,
        y_valid: Any = None,
        callbacks: TrainingCallbacks | None = None,
        init_model: VAE | None = None,
        init_from: Any = None,
        **fit_params: Any,
    ) -> Self:
        """Fit on the rows of ``X``; ``y`` and ``y_valid`` (anomaly labels) are ignored."""
        reject_unknown(fit_params)
        self._fit(
            X,
            None,
            X_valid=X_valid,
            callbacks=callbacks,
            init_model=init_model,
            init_from=init_from,
        )
        self.threshold_ = float(np.quantile(self.score_samples(X), 1.0 - self.contamination))
        return self

    def _inputs(self, X: Any, reset: bool) -> Any:
        X = validate_data(self, X, reset=reset, accept_sparse="csr", dtype=np.float64)
        if reset:
            if X.shape[0] < 2:
                raise ValueError(f"{type(self).__name__} needs at least 2 samples; got 1 sample")
            mean = np.asarray(X.mean(axis=0)).ravel()
            if hasattr(X, "multiply"):
                sq = np.asarray(X.multiply(X).mean(axis=0)).ravel()
                std = np.sqrt(np.maximum(sq - mean**2, 0.0))
            else:
                std = X.std(axis=0)
            self.x_mean_ = mean
            self.x_scale_ = np.where(std > 1e-12, std, 1.0)
        if hasattr(X, "multiply"):  # sparse: scaled here, centred batch by batch in the net
            return float_tensor(X.multiply(1.0 / self.x_scale_).tocsr())
        return float_tensor(X / self.x_scale_)

    def _prepare(self, X: Any, y: Any, reset: bool, **fit_params: Any) -> list[Any]:
        return [self._inputs(X, reset)]

    def _build_module(self) -> nn.Module:
        net = VAENet(
            self.n_features_in_,
            self.n_components,
            self.depth,
            self.width,
            self.activation,
            self.dropout,
        )
        net.center.copy_(torch.from_numpy(self.x_mean_ / self.x_scale_))
        return net

    def _batch_loss(
        self, module: nn.Module, batch: Sequence[Any], generator: torch.Generator
    ) -> torch.Tensor:
        (x,) = batch
        noise = torch.randn((x.shape[0], self.n_components), generator=generator)
        error, kl = cast(VAENet, module).terms(x, noise)
        return (0.5 * error + self.beta * kl).mean()

    def _evaluate(
        self, module: nn.Module, data: Sequence[Any], generator: torch.Generator
    ) -> dict[str, float]:
        (x,) = data
        error, kl = cast(VAENet, module).terms(x, None)
        return {
            "loss": float((0.5 * error + self.beta * kl).mean()),
            "reconstruction_error": float(error.mean()) / x.shape[1],
        }

    def score_samples(self, X: Any) -> npt.NDArray[np.float64]:
        """Anomaly score per row; higher = more anomalous (see the module docstring)."""
        check_is_fitted(self)
        x = self._inputs(X, reset=False)
        n_features = self.n_features_in_
        net = cast(VAENet, self.module_)

        def forward(batch: Sequence[Any]) -> torch.Tensor:
            error, kl = net.terms(batch[0], None)
            if self.anomaly_score == "elbo":
                return 0.5 * error + kl
            return error / n_features

        return self._infer(forward, [x]).double().numpy()

    def decision_function(self, X: Any) -> npt.NDArray[np.float64]:
        """The same as :meth:`score_samples`: higher = more anomalous."""
        return self.score_samples(X)

    def predict(self, X: Any) -> npt.NDArray[np.int64]:
        """1 for rows scoring above ``threshold_`` (anomalies), else 0."""
        return (self.score_samples(X) > self.threshold_).astype(np.int64)

    def transform(self, X: Any) -> npt.NDArray[np.float64]:
        """Latent means, ``(n, n_components)``: embeddings of the rows."""
        check_is_fitted(self)
        x = self._inputs(X, reset=False)
        net = cast(VAENet, self.module_)
        return self._infer(lambda b: net.encode(net.centred(b[0]))[0], [x]).double().numpy()

    def _fitted_config(self) -> dict[str, Any]:
        return {
            "x_mean": self.x_mean_.tolist(),
            "x_scale": self.x_scale_.tolist(),
            "threshold": self.threshold_,
        }

    def _restore_fitted(self, config: dict[str, Any]) -> None:
        self.x_mean_ = np.asarray(config["x_mean"], dtype=np.float64)
        self.x_scale_ = np.asarray(config["x_scale"], dtype=np.float64)
        self.threshold_ = float(config["threshold"])
