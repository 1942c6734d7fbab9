"""What every torch algorithm shares: training hyperparameters, fit, batched inference, files.

A subclass implements five hooks and gets ``fit`` (with validation data,
early stopping, callbacks, checkpoints, resume and warm start), batched
inference and ``save``/``load``:

- ``_prepare(X, y, reset, **fit_params)`` validates the input and returns the
  training columns (tensors sharing their first dimension); ``reset=True``
  fits the encoders (classes, scalers, vocabularies), ``reset=False`` reuses
  them (validation data, fine-tuning). A fit prepares its training rows first,
  then ``X_valid``;
- ``_build_module()`` builds the network from the fitted encoders;
- ``_batch_loss(module, batch, generator)`` and ``_evaluate(module, data,
  generator)`` (a dict with ``loss`` and optional metrics) drive the loop in
  :mod:`.trainer`. ``_batch_loss`` may also return running sums with the loss
  (:data:`~.trainer.BatchLoss`), which ``_running_metrics`` turns into the
  epoch's training metrics: then no epoch pays for a separate evaluation of
  training rows;
- ``_fitted_config()``/``_restore_fitted(config)``: the encoders as JSON.

A saved model is a directory holding ``config.json`` (the format, the
algorithm, its hyperparameters and its fitted encoders) and ``weights.pt``
(the module's state dict: tensors only, read with ``weights_only=True``, so
loading never runs code).

Every ``fit`` takes ``X_valid``/``y_valid`` (else, when something monitors a
validation loss, ``validation_fraction`` of the rows is held out), ``callbacks``
(:class:`~openmaas.ml.catalog.base.TrainingCallbacks`), and a parent to
fine-tune from, fitted (``init_model``) or saved (``init_from=directory``):
the model adopts the parent's encoders and weights, then trains on the new
data (so the architecture hyperparameters must match). After ``fit``:
``module_``, ``learning_curve_``, ``n_epochs_`` and ``best_epoch_``.

``n_threads`` and the seeded global generator are process-wide while a fit or
a prediction runs (:func:`~.trainer.torch_session`): one at a time per process.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from openmaas.errors import InvalidFile, InvalidInput
from openmaas.ml.catalog.base import Algorithm, HyperParameter, TrainingCallbacks
from openmaas.ml.catalog.persist import read_json, write_json
from openmaas.ml.catalog.torch.hyperparameters import SEARCH_RANGES
from openmaas.ml.catalog.torch.inputs import data_digest, take
from openmaas.ml.catalog.torch.trainer import BatchLoss, TrainSettings, torch_session, train

__all__ = [
    "CONFIG_FILE",
    "FORMAT",
    "WEIGHTS_FILE",
    "TorchAlgorithm",
    "reject_unknown",
]

FORMAT = "openmaas.torch/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"
PREDICT_ROWS = 65_536
"""Rows per inference batch."""


class TorchAlgorithm(Algorithm):
    """Base of the torch algorithms (see the module docstring for the hooks)."""

    iterative = True
    warm_start_capable = True
    _supports_sparse: ClassVar[bool] = False

    # set by every subclass's __init__ (see .hyperparameters.training_hyperparameters)
    task_type: str
    epochs: int
    batch_size: int
    optimizer: str
    learning_rate: float
    momentum: float
    weight_decay: float
    lr_schedule: str
    lr_decay: float
    lr_decay_epochs: int
    patience: int
    validation_fraction: float
    max_gradient_norm: float | None
    clip_gradient_norm: float | None
    random_state: int
    n_threads: int
    module_: nn.Module

    # -- hooks ---------------------------------------------------------------------------

    def _prepare(self, X: Any, y: Any, reset: bool, **fit_params: Any) -> list[Any]:
        raise NotImplementedError

    def _build_module(self) -> nn.Module:
        raise NotImplementedError

    def _batch_loss(
        self, module: nn.Module, batch: Sequence[Any], generator: torch.Generator
    ) -> BatchLoss:
        raise NotImplementedError

    def _evaluate(
        self, module: nn.Module, data: Sequence[Any], generator: torch.Generator
    ) -> dict[str, float]:
        loss = self._batch_loss(module, data, generator)
        return {"loss": float(loss[0] if isinstance(loss, tuple) else loss)}

    def _running_metrics(self, means: dict[str, torch.Tensor]) -> dict[str, float]:
        """The training metrics of an epoch from the means of ``_batch_loss``'s running sums."""
        return {k: float(v.double().mean()) for k, v in means.items()}

    def _fitted_config(self) -> dict[str, Any]:
        return {}

    def _restore_fitted(self, config: dict[str, Any]) -> None:
        return None

    # -- scikit-learn --------------------------------------------------------------------

    @classmethod
    def search_space(cls) -> list[HyperParameter]:
        return [
            dataclasses.replace(h, **SEARCH_RANGES.get(h.name, {}))
            for h in cls.hyperparameters()
            if h.tunable
        ]

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "module_")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = self._supports_sparse
        tags.non_deterministic = False
        return tags

    # -- fit -----------------------------------------------------------------------------

    def _fit(
        self,
        X: Any,
        y: Any,
        *,
        X_valid: Any = None,
        y_valid: Any = None,
        callbacks: TrainingCallbacks | None = None,
        init_model: TorchAlgorithm | None = None,
        init_from: str | Path | None = None,
        **fit_params: Any,
    ) -> Self:
        self._validate_params()
        parent = self._parent(init_model, init_from)
        with torch_session(self.random_state, self.n_threads):
            if parent is not None:
                self._restore_all(parent[0])
            train_data = self._prepare(X, y, reset=parent is None, **fit_params)
            valid_data = None
            if X_valid is not None:
                valid_data = self._prepare(X_valid, y_valid, reset=False, **fit_params)
            elif self.patience > 0 or self.lr_schedule == "plateau":
                train_data, valid_data = _holdout(
                    train_data, self.validation_fraction, self.random_state
                )
            module = self._build_module()
            if parent is not None:
                _load_weights(module, parent[1], "cannot fine-tune from the parent model")
            params = {k: v for k, v in self.get_params().items() if k != "n_threads"}
            result = train(
                module,
                lambda batch, g: self._batch_loss(module, batch, g),
                lambda data, g: self._evaluate(module, data, g),
                train_data,
                valid_data,
                self._settings(),
                callbacks,
                fingerprint=lambda: data_digest(params, train_data),
                running_fn=self._running_metrics,
            )
        self.module_ = module
        self.learning_curve_ = result.curve
        self.n_epochs_ = result.epochs_run
        self.best_epoch_ = result.best_epoch
        return self

    def _parent(
        self, model: TorchAlgorithm | None, directory: str | Path | None
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
        """The fitted config and weights to fine-tune from, if any."""
        if model is not None and directory is not None:
            raise InvalidInput("give init_model or init_from, not both")
        if directory is not None:
            config, weights = _read_saved(Path(directory), self.name)
            return config["fitted"], weights
        if model is None:
            return None
        if type(model) is not type(self):
            raise InvalidInput(
                f"cannot fine-tune {self.name!r} from a {getattr(model, 'name', type(model))!r} "
                "model",
                details={"algorithm": self.name},
            )
        check_is_fitted(model)
        return model._all_fitted(), model.module_.state_dict()

    def _settings(self) -> TrainSettings:
        return TrainSettings(
            epochs=self.epochs,
            batch_size=self.batch_size,
            optimizer=self.optimizer,
            learning_rate=self.learning_rate,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            lr_schedule=self.lr_schedule,
            lr_decay=self.lr_decay,
            lr_decay_epochs=self.lr_decay_epochs,
            patience=self.patience,
            max_gradient_norm=self.max_gradient_norm,
            clip_gradient_norm=self.clip_gradient_norm,
            seed=self.random_state,
        )

    # -- inference -----------------------------------------------------------------------

    def _infer(
        self, forward: Callable[[Sequence[Any]], torch.Tensor], columns: Sequence[Any]
    ) -> torch.Tensor:
        """``forward`` over ``columns`` in batches of :data:`PREDICT_ROWS` rows, concatenated."""
        check_is_fitted(self)
        n = len(columns[0])
        self.module_.eval()
        with torch_session(None, self.n_threads), torch.inference_mode():
            outs = [
                forward([c[start : start + PREDICT_ROWS] for c in columns])
                for start in range(0, max(n, 1), PREDICT_ROWS)
            ]
        return torch.cat(outs) if len(outs) > 1 else outs[0]

    # -- files ---------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        check_is_fitted(self)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "format": FORMAT,
            "algorithm": self.name,
            "params": {
                k: v.item() if isinstance(v, np.generic) else v
                for k, v in self.get_params().items()
            },
            "fitted": self._all_fitted(),
            "torch": torch.__version__,
        }
        write_json(directory / CONFIG_FILE, config)
        state = {k: v.detach().clone() for k, v in self.module_.state_dict().items()}
        torch.save(state, directory / WEIGHTS_FILE)

    @classmethod
    def load(cls, directory: Path) -> Self:
        config, weights = _read_saved(Path(directory), cls.name)
        try:
            model = cls(**config["params"])
        except TypeError as e:
            raise InvalidFile(f"{CONFIG_FILE} has parameters {cls.__name__} lacks: {e}") from e
        with torch_session(model.random_state, model.n_threads):
            model._restore_all(config["fitted"])
            module = model._build_module()
        _load_weights(module, weights, f"cannot load {directory}")
        module.eval()
        model.module_ = module
        return model

    def _all_fitted(self) -> dict[str, Any]:
        out = {
            "n_features_in": getattr(self, "n_features_in_", None),
            "learning_curve": self.learning_curve_.values,
            "n_epochs": self.n_epochs_,
            "best_epoch": self.best_epoch_,
            **self._fitted_config(),
        }
        if hasattr(self, "feature_names_in_"):
            out["feature_names_in"] = [str(n) for n in self.feature_names_in_]
        return out

    def _restore_all(self, fitted: dict[str, Any]) -> None:
        from openmaas.ml.catalog.base import LearningCurve

        if fitted.get("n_features_in") is not None:
            self.n_features_in_ = int(fitted["n_features_in"])
        if "feature_names_in" in fitted:
            self.feature_names_in_ = np.asarray(fitted["feature_names_in"], dtype=object)
        self.learning_curve_ = LearningCurve(
            {k: list(v) for k, v in fitted.get("learning_curve", {}).items()}
        )
        self.n_epochs_ = int(fitted.get("n_epochs", 0))
        self.best_epoch_ = int(fitted.get("best_epoch", 0))
        self._restore_fitted(fitted)


def reject_unknown(fit_params: dict[str, Any]) -> None:
    """TypeError naming fit parameters no torch algorithm takes."""
    if fit_params:
        raise TypeError(f"unexpected fit parameters: {', '.join(sorted(fit_params))}")


def _holdout(columns: list[Any], fraction: float, seed: int) -> tuple[list[Any], list[Any] | None]:
    n = len(columns[0])
    n_valid = round(n * fraction)
    if n_valid < 1 or n - n_valid < 2:
        return columns, None
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 3))
    valid, rest = order[:n_valid].sort().values, order[n_valid:].sort().values
    return [take(c, rest) for c in columns], [take(c, valid) for c in columns]


def _read_saved(directory: Path, name: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    config = read_json(directory / CONFIG_FILE)
    if config.get("format") != FORMAT:
        raise InvalidFile(f"{directory} does not hold a torch model (format {FORMAT!r})")
    if config.get("algorithm") != name:
        raise InvalidFile(f"{directory} holds algorithm {config.get('algorithm')!r}, not {name!r}")
    try:
        weights = torch.load(directory / WEIGHTS_FILE, weights_only=True, map_location="cpu")
    except Exception as e:  # missing, truncated or not tensors only
        raise InvalidFile(f"cannot read {WEIGHTS_FILE} in {directory}: {e}") from e
    if not isinstance(weights, dict) or not all(
        isinstance(v, torch.Tensor) for v in weights.values()
    ):
        raise InvalidFile(f"{WEIGHTS_FILE} in {directory} must hold a dict of tensors")
    return config, weights


def _load_weights(module: nn.Module, weights: dict[str, torch.Tensor], context: str) -> None:
    own = module.state_dict()
    missing = sorted(set(own) - set(weights))
    extra = sorted(set(weights) - set(own))
    if missing or extra:
        raise InvalidInput(
            f"{context}: the weights do not match the architecture "
            f"(missing {missing[:3]}, unexpected {extra[:3]})",
            details={"missing": missing[:20], "unexpected": extra[:20]},
        )
    for key, tensor in own.items():
        if tensor.shape != weights[key].shape:
            raise InvalidInput(
                f"{context}: {key!r} has shape {tuple(weights[key].shape)} in the saved model "
                f"but {tuple(tensor.shape)} here (hyperparameters or data shape differ)",
                details={"parameter": key},
            )
    module.load_state_dict(weights)
