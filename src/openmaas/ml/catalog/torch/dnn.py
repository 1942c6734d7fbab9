"""A multilayer perceptron for tabular data, with one head per target.

Input: numeric columns (standardised by the ``ordinal`` preprocessing) and
categorical codes, each looked up in its own embedding (``categorical_features``
and ``cardinalities`` fit parameters, as :mod:`openmaas.ml.preprocessing`
passes them). A shared trunk of ``depth`` blocks feeds one linear head per
target: a softmax head per categorical target, a linear one per numeric
target (trained on the standardised target, predicted in its units). On
``multitarget`` tasks the heads share the trunk (multi-task learning); the
loss is the mean of the per-target losses (cross-entropy, squared error).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import torch
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
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
    split_categorical,
)
from openmaas.ml.catalog.torch.layers import ACTIVATIONS, TabularInput, embedding_size, mlp

__all__ = ["DNN", "DNNNet"]


class DNNNet(nn.Module):
    """Embeddings + MLP trunk + one linear head per target; returns a list of head outputs."""

    def __init__(
        self,
        n_numeric: int,
        cardinalities: Sequence[int],
        embedding_dims: Sequence[int],
        depth: int,
        width: int,
        activation: str,
        dropout: float,
        batch_norm: bool,
        head_sizes: Sequence[int],
    ) -> None:
        super().__init__()
        self.input = TabularInput(n_numeric, cardinalities, embedding_dims)
        self.trunk = mlp(self.input.out_dim, depth, width, activation, dropout, batch_norm)
        dim = width if depth > 0 else self.input.out_dim
        self.heads = nn.ModuleList(nn.Linear(dim, size) for size in head_sizes)

    def forward(self, numeric: torch.Tensor, codes: torch.Tensor) -> list[torch.Tensor]:
        hidden = self.trunk(self.input(numeric, codes))
        return [head(hidden) for head in self.heads]


def _classifier_only(self: DNN) -> bool:
    return self._is_classifier


@register
class DNN(TorchAlgorithm):
    name = "dnn"
    description = (
        "Multilayer perceptron (PyTorch) with embeddings for categorical columns; "
        "multi-task (one head per target, shared layers) on multitarget tasks."
    )
    task_types = frozenset({"binary", "multiclass", "regression", "multitarget"})
    preprocessing = "ordinal"

    def __init__(
        self,
        task_type: str = "binary",
        depth: int = 2,
        width: int = 64,
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        embedding_dim: int | None = None,
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
        self.depth = depth
        self.width = width
        self.activation = activation
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.embedding_dim = embedding_dim
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
                "depth",
                "int",
                2,
                "Hidden layers in the shared trunk (0 = linear model).",
                low=0,
                high=10,
            ),
            hp("width", "int", 64, "Units per hidden layer.", low=4, high=2048, log=True),
            hp(
                "activation",
                "str",
                "relu",
                "Activation of the hidden layers.",
                choices=tuple(ACTIVATIONS),
            ),
            hp("dropout", "float", 0.0, "Dropout rate after each hidden layer.", low=0.0, high=0.9),
            hp("batch_norm", "bool", False, "Batch normalisation before each activation."),
            hp(
                "embedding_dim",
                "int",
                None,
                "Embedding width of every categorical column; null: min(50, 1.6 * "
                "cardinality^0.56) per column.",
                low=1,
                high=512,
                nullable=True,
            ),
            *training_hyperparameters(),
        ]

    # -- data ----------------------------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        X_valid: Any = None,
        y_valid: Any = None,
        callbacks: TrainingCallbacks | None = None,
        init_model: DNN | None = None,
        init_from: Any = None,
        categorical_features: Sequence[int] | None = None,
        cardinalities: Sequence[int] | None = None,
        **fit_params: Any,
    ) -> Self:
        """Fit on ``X``, ``y``; see :class:`TorchAlgorithm` for the keyword arguments.

        ``categorical_features`` are the column indices holding category codes
        and ``cardinalities`` their numbers of codes (inferred from ``X`` if not given).
        """
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

    def _prepare(self, X: Any, y: Any, reset: bool, **fit_params: Any) -> list[Any]:
        categorical_features = fit_params.get("categorical_features")
        cardinalities = fit_params.get("cardinalities")
        multi = self.task_type == "multitarget"
        has_cats = bool(categorical_features) or bool(getattr(self, "categorical_features_", []))
        finite: Any = "allow-nan" if has_cats else True
        X, y = validate_data(
            self,
            X,
            y,
            reset=reset,
            multi_output=multi,
            ensure_all_finite=finite,
            y_numeric=False,
            dtype=np.float64,
        )
        if reset:
            if self.batch_norm and len(X) < 2:
                raise ValueError("batch_norm needs at least 2 samples; got 1 sample")
            if self.batch_norm and self.batch_size == 1:
                raise InvalidInput(
                    "batch_norm needs batches of at least 2 rows; set batch_size to 0 or >= 2, "
                    "or turn batch_norm off for online learning"
                )
            cats, cards = check_categorical(X.shape[1], categorical_features, cardinalities, X)
            self.categorical_features_, self.cardinalities_ = cats, cards
            self._fit_targets(y)
        numeric, codes = split_categorical(X, self.categorical_features_, self.cardinalities_)
        reg, cls = self._encode_targets(y)
        return [numeric, codes, reg, cls]

    def _targets_2d(self, y: Any) -> npt.NDArray[Any]:
        values: npt.NDArray[Any] = np.asarray(y)
        if self.task_type == "multitarget":
            return values.reshape(len(values), -1)
        return values.reshape(-1, 1)

    def _fit_targets(self, y: Any) -> None:
        y2 = self._targets_2d(y)
        if self._is_classifier:
            check_classification_targets(y)
            kinds = ["classification"]
        elif self.task_type == "regression":
            kinds = ["regression"]
        else:
            kinds = [_target_kind(y2[:, j]) for j in range(y2.shape[1])]
        self.target_kinds_ = kinds
        self.y_1d_ = np.ndim(y) == 1
        self.target_classes_: list[npt.NDArray[Any] | None] = []
        means, scales = [], []
        for j, kind in enumerate(kinds):
            if kind == "classification":
                classes = np.unique(y2[:, j])
                if len(classes) < 2:
                    raise InvalidInput(
                        f"the target has 1 class ({classes[0].item()!r}); classification needs "
                        "at least 2 classes",
                        details={"classes": 1},
                    )
                self.target_classes_.append(classes)
            else:
                values = _numeric_target(y2[:, j])
                means.append(float(values.mean()))
                scales.append(float(values.std()) or 1.0)
                self.target_classes_.append(None)
        self.y_mean_ = np.asarray(means)
        self.y_scale_ = np.asarray(scales)
        if self._is_classifier:
            self.classes_ = self.target_classes_[0]

    def _encode_targets(self, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
        y2 = self._targets_2d(y)
        reg_cols = [j for j, k in enumerate(self.target_kinds_) if k == "regression"]
        reg = (_numeric_target(y2[:, reg_cols]).reshape(len(y2), -1) - self.y_mean_) / self.y_scale_
        cls = np.zeros((len(y2), len(self.target_kinds_) - len(reg_cols)), dtype=np.int64)
        for i, j in enumerate(j for j, k in enumerate(self.target_kinds_) if k != "regression"):
            classes = self.target_classes_[j]
            assert classes is not None
            index = np.searchsorted(classes, y2[:, j])
            index = np.minimum(index, len(classes) - 1)
            unseen = classes[index] != y2[:, j]
            if unseen.any():
                value = y2[:, j][unseen][0]
                value = value.item() if isinstance(value, np.generic) else value
                raise InvalidInput(
                    f"the target holds class {value!r}, unseen when the model was first fitted",
                    details={"target": j},
                )
            cls[:, i] = index
        return torch.from_numpy(reg.astype(np.float32)), torch.from_numpy(cls)

    # -- training ------------------------------------------------------------------------

    def _build_module(self) -> nn.Module:
        sizes = [1 if c is None else len(c) for c in self.target_classes_]
        dims = [embedding_size(c, self.embedding_dim) for c in self.cardinalities_]
        n_numeric = self.n_features_in_ - len(self.categorical_features_)
        return DNNNet(
            n_numeric,
            self.cardinalities_,
            dims,
            self.depth,
            self.width,
            self.activation,
            self.dropout,
            self.batch_norm,
            sizes,
        )

    def _losses(
        self, outputs: list[torch.Tensor], reg: torch.Tensor, cls: torch.Tensor
    ) -> list[torch.Tensor]:
        losses, r, c = [], 0, 0
        for out, kind in zip(outputs, self.target_kinds_, strict=True):
            if kind == "regression":
                losses.append(F.mse_loss(out[:, 0], reg[:, r]))
                r += 1
            else:
                losses.append(F.cross_entropy(out, cls[:, c]))
                c += 1
        return losses

    def _batch_loss(
        self, module: nn.Module, batch: Sequence[Any], generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss, and the sums the epoch's running training metrics come from."""
        numeric, codes, reg, cls = batch
        outputs = module(numeric, codes)
        return _mean(self._losses(outputs, reg, cls)), self._sums(outputs, reg, cls)

    def _sums(
        self, outputs: list[torch.Tensor], reg: torch.Tensor, cls: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Per target, summed over the rows: squared errors (standardised), correct labels."""
        sums: dict[str, torch.Tensor] = {}
        kinds = self.target_kinds_
        with torch.no_grad():
            reg_out = [o[:, 0] for o, k in zip(outputs, kinds, strict=True) if k == "regression"]
            if reg_out:
                sums["squared_error"] = (torch.stack(reg_out, dim=1) - reg).square().sum(dim=0)
            cls_out = [
                o.argmax(dim=1) for o, k in zip(outputs, kinds, strict=True) if k != "regression"
            ]
            if cls_out:
                sums["correct"] = (torch.stack(cls_out, dim=1) == cls).sum(dim=0)
        return sums

    def _running_metrics(self, means: dict[str, torch.Tensor]) -> dict[str, float]:
        """``rmse`` (in the targets' units, averaged over numeric targets) and ``accuracy``
        (averaged over categorical targets) from the per-row means of :meth:`_sums`."""
        out = {}
        if "squared_error" in means:
            scale = torch.as_tensor(self.y_scale_, dtype=torch.float64)
            out["rmse"] = float((means["squared_error"].double().sqrt() * scale).mean())
        if "correct" in means:
            out["accuracy"] = float(means["correct"].double().mean())
        return out

    def _evaluate(
        self, module: nn.Module, data: Sequence[Any], generator: torch.Generator
    ) -> dict[str, float]:
        numeric, codes, reg, cls = data
        outputs = module(numeric, codes)
        means = {k: v / len(numeric) for k, v in self._sums(outputs, reg, cls).items()}
        loss = float(_mean(self._losses(outputs, reg, cls)))
        return {"loss": loss, **self._running_metrics(means)}

    # -- prediction ----------------------------------------------------------------------

    def _outputs(self, X: Any) -> list[torch.Tensor]:
        check_is_fitted(self)
        finite: Any = "allow-nan" if self.categorical_features_ else True
        X = validate_data(self, X, reset=False, ensure_all_finite=finite, dtype=np.float64)
        numeric, codes = split_categorical(X, self.categorical_features_, self.cardinalities_)
        flat = self._infer(lambda b: torch.cat(self.module_(*b), dim=1), [numeric, codes])
        sizes = [1 if c is None else len(c) for c in self.target_classes_]
        return list(torch.split(flat.double(), sizes, dim=1))

    def predict(self, X: Any) -> npt.NDArray[Any]:
        """Labels (classification), values (regression), an (n, targets) array (multitarget)."""
        columns: list[npt.NDArray[Any]] = []
        outputs = self._outputs(X)
        r = 0
        for out, classes in zip(outputs, self.target_classes_, strict=True):
            if classes is None:
                columns.append(out[:, 0].numpy() * self.y_scale_[r] + self.y_mean_[r])
                r += 1
            else:
                columns.append(classes[out.argmax(dim=1).numpy()])
        if self.task_type != "multitarget":
            return columns[0]
        if self.y_1d_:  # a multitarget model fitted on one 1-D target predicts 1-D
            return columns[0]
        kinds = set(self.target_kinds_)
        return np.column_stack(columns) if kinds == {"regression"} else _object_columns(columns)

    @available_if(_classifier_only)  # type: ignore[untyped-decorator]
    def predict_proba(self, X: Any) -> npt.NDArray[np.float64]:
        """Class probabilities, columns in the order of ``classes_``."""
        return self._outputs(X)[0].softmax(dim=1).numpy()

    # -- files ---------------------------------------------------------------------------

    def _fitted_config(self) -> dict[str, Any]:
        return {
            "categorical_features": self.categorical_features_,
            "cardinalities": self.cardinalities_,
            "target_kinds": self.target_kinds_,
            "y_1d": self.y_1d_,
            "target_classes": [
                None if c is None else encode_labels(c) for c in self.target_classes_
            ],
            "y_mean": self.y_mean_.tolist(),
            "y_scale": self.y_scale_.tolist(),
        }

    def _restore_fitted(self, config: dict[str, Any]) -> None:
        self.categorical_features_ = [int(c) for c in config["categorical_features"]]
        self.cardinalities_ = [int(c) for c in config["cardinalities"]]
        self.target_kinds_ = list(config["target_kinds"])
        self.y_1d_ = bool(config["y_1d"])
        self.target_classes_ = [
            None if c is None else decode_labels(c) for c in config["target_classes"]
        ]
        self.y_mean_ = np.asarray(config["y_mean"], dtype=np.float64)
        self.y_scale_ = np.asarray(config["y_scale"], dtype=np.float64)
        if self._is_classifier:
            self.classes_ = self.target_classes_[0]


def _mean(losses: list[torch.Tensor]) -> torch.Tensor:
    """The mean of the per-target losses; a single target's loss as it is (the same value,
    two operations fewer forward and backward on every batch)."""
    return losses[0] if len(losses) == 1 else torch.stack(losses).mean()


def _target_kind(column: npt.NDArray[Any]) -> str:
    """``regression`` for numbers, ``classification`` for anything else (strings, booleans)."""
    if column.dtype.kind in "fiu":
        return "regression"
    if column.dtype.kind == "O" and all(
        isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
        for v in column
    ):
        return "regression"
    return "classification"


def _numeric_target(values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    out = np.asarray(values, dtype=np.float64)
    if not np.isfinite(out).all():
        raise InvalidInput("the target holds missing or infinite values; drop or fill them")
    return out


def _object_columns(columns: list[npt.NDArray[Any]]) -> npt.NDArray[Any]:
    out = np.empty((len(columns[0]), len(columns)), dtype=object)
    for j, column in enumerate(columns):
        out[:, j] = column
    return out
