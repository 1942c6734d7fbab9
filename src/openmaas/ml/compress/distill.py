"""``distill``: a small student trained on a teacher's soft predictions.

The student learns the teacher's function, not the labels: class
probabilities for classification (cross-entropy against the soft labels),
values for regression (squared error). Probabilities carry more than labels
(how sure the teacher is, which classes it confuses), so a shallow student
gets close to a large teacher on the rows it was shown.

The result is a fitted ``Pipeline(prep, model)`` exactly as the engine builds
one (:func:`openmaas.ml.preprocessing.make_pipeline`): the student's own
preprocessing fitted on ``X`` and a catalog model, ``lightgbm`` or ``dnn``.
So :func:`~openmaas.ml.catalog.persist.save_pipeline` /
``load_pipeline``, :func:`~.onnx_export.export_onnx` and serving take it like
any trained version; a LightGBM student's ``booster_`` is also a plain
booster.

- ``lightgbm``: soft cross-entropy is LightGBM's own binary or multiclass log
  loss with each row repeated once per class, labelled with that class and
  weighted by the teacher's probability of it; the gradient is exactly
  ``p - q``, and the model is an ordinary binary/multiclass booster;
- ``dnn``: the torch MLP, trained by the catalog's training loop on the
  soft-label cross-entropy (regression: its ordinary ``fit``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.pipeline import Pipeline

from openmaas.errors import InvalidInput
from openmaas.ml.catalog.base import Algorithm, LearningCurve
from openmaas.ml.catalog.registry import check_params, get_algorithm
from openmaas.ml.preprocessing import make_preprocessor

__all__ = ["STUDENT_DEFAULTS", "distill"]

Student = Literal["lightgbm", "dnn", "mlp"]
_ALGORITHMS = {"lightgbm": "lightgbm", "dnn": "dnn", "mlp": "dnn"}
_TASKS = ("binary", "multiclass", "regression")

STUDENT_DEFAULTS: dict[str, dict[str, Any]] = {
    "lightgbm": {"n_estimators": 100, "num_leaves": 15, "learning_rate": 0.1},
    "dnn": {"depth": 2, "width": 32, "epochs": 200, "patience": 10, "learning_rate": 3e-3},
}
"""Small by default: a student is there to be cheaper than its teacher."""


def distill(
    teacher_predict: Callable[[Any], Any],
    X: pd.DataFrame | npt.ArrayLike,
    y_type: str,
    student: Student = "lightgbm",
    *,
    columns: Sequence[tuple[str, str]] | None = None,
    classes: npt.ArrayLike | None = None,
    params: Mapping[str, Any] | None = None,
    random_state: int = 0,
) -> Pipeline:
    """A fitted student pipeline imitating ``teacher_predict`` on the rows ``X``.

    ``teacher_predict(X)`` is called once with ``X`` as given and returns class
    probabilities ``(n, classes)`` (or P(positive) per row for ``binary``) or
    regression values ``(n,)``. ``y_type`` is ``binary``, ``multiclass`` or
    ``regression``; ``classes`` labels the probability columns (default
    ``0..k-1``). ``columns`` are ``(name, kind)`` pairs as the teacher's
    preprocessor knows them (default: every column of ``X``, numeric; an
    array's columns are named ``f0``, ``f1``, ...). ``params`` override the
    student's hyperparameters (:data:`STUDENT_DEFAULTS` over the catalog's).
    """
    if y_type not in _TASKS:
        raise InvalidInput(f"y_type must be one of {', '.join(_TASKS)}; got {y_type!r}")
    if student not in _ALGORITHMS:
        raise InvalidInput(f"student must be one of {', '.join(_ALGORITHMS)}; got {student!r}")
    frame = _frame(X)
    if columns is None:
        columns = [(str(c), "numeric") for c in frame.columns]
    targets = _soft_targets(teacher_predict(X), y_type, len(frame))
    labels = _classes(classes, targets, y_type)
    cls = get_algorithm(_ALGORITHMS[student])
    settings = {**STUDENT_DEFAULTS[cls.name], **(params or {}), "random_state": random_state}
    model = cls(task_type=y_type, **check_params(cls, settings))
    prep: Any = make_preprocessor(columns, cls.preprocessing)
    if prep == "passthrough":
        features = frame.to_numpy(dtype=np.float64)
    else:
        features = prep.fit(frame).transform(frame)
    if cls.name == "lightgbm":
        _fit_lightgbm(model, features, targets, labels)
    elif labels is None:
        model.fit(features, targets)
    else:
        _fit_dnn(model, features, targets, labels)
    return Pipeline([("prep", prep), ("model", model)])


def _frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    array = np.asarray(X)
    if array.ndim != 2:
        raise InvalidInput(f"X must be 2-D (rows, features); got shape {array.shape}")
    return pd.DataFrame(array, columns=[f"f{i}" for i in range(array.shape[1])])


def _soft_targets(raw: Any, y_type: str, n: int) -> npt.NDArray[np.float64]:
    out = np.asarray(raw, dtype=np.float64)
    if len(out) != n:
        raise InvalidInput(f"the teacher returned {len(out)} predictions for {n} rows")
    if not np.isfinite(out).all():
        raise InvalidInput("the teacher's predictions hold NaN or infinite values")
    if y_type == "regression":
        if out.ndim != 1:
            raise InvalidInput(f"a regression teacher must return (n,) values; got {out.shape}")
        return out
    if out.ndim == 1:
        out = np.column_stack([1.0 - out, out])
    if out.ndim != 2 or out.shape[1] < 2 or (y_type == "binary" and out.shape[1] != 2):
        raise InvalidInput(f"the teacher must return class probabilities; got shape {out.shape}")
    if (out < -1e-6).any() or np.abs(out.sum(axis=1) - 1.0).max() > 1e-3:
        raise InvalidInput("the teacher's probabilities are not in [0, 1] summing to 1 per row")
    out = np.clip(out, 0.0, 1.0)
    result: npt.NDArray[np.float64] = out / out.sum(axis=1, keepdims=True)
    return result


def _classes(given: Any, targets: np.ndarray, y_type: str) -> np.ndarray | None:
    if y_type == "regression":
        return None
    k = targets.shape[1]
    labels = np.arange(k) if given is None else np.asarray(given)
    if labels.shape != (k,):
        raise InvalidInput(f"got {labels.size} class labels for {k} probability columns")
    return labels


def _fit_lightgbm(
    model: Algorithm, X: np.ndarray, targets: np.ndarray, classes: np.ndarray | None
) -> None:
    """Boost on the soft targets; set the attributes ``LightGBM.fit`` sets."""
    import lightgbm as lgb

    model._validate_params()
    if classes is None:
        data = lgb.Dataset(X, targets, free_raw_data=False)
        params = model.booster_params(None)
    else:
        k = len(classes)
        data = lgb.Dataset(
            np.tile(X, (k, 1)),
            np.repeat(np.arange(k), len(X)),
            weight=targets.T.reshape(-1),
            free_raw_data=False,
        )
        params = model.booster_params(k)
    evals: dict[str, Any] = {}
    booster = lgb.train(
        params,
        data,
        num_boost_round=model.n_estimators,
        valid_sets=[data],
        valid_names=["train"],
        callbacks=[lgb.record_evaluation(evals)],
    )
    model.booster_ = booster
    model.n_features_in_ = X.shape[1]
    model.best_iteration_ = booster.current_iteration()
    losses = next(iter(evals["train"].values())) if evals.get("train") else []
    model.learning_curve_ = LearningCurve({"train_loss": [float(v) for v in losses]})
    if classes is not None:
        model.classes_ = classes


def _fit_dnn(model: Any, X: np.ndarray, targets: np.ndarray, classes: np.ndarray) -> None:
    """Train the DNN's own network with the catalog's loop on soft-label cross-entropy.

    The encoders are restored from the same dictionary ``DNN.save`` writes, so
    the student saves, loads and predicts as any fitted DNN does.
    """
    import torch
    from torch.nn import functional as F

    from openmaas.ml.catalog.torch.inputs import encode_labels
    from openmaas.ml.catalog.torch.trainer import torch_session, train

    model._validate_params()
    if not np.isfinite(X).all():
        raise InvalidInput("the dnn student needs finite features; impute missing values first")
    fitted = {
        "n_features_in": X.shape[1], "learning_curve": {}, "n_epochs": 0, "best_epoch": 0,
        "categorical_features": [], "cardinalities": [], "target_kinds": ["classification"],
        "y_1d": True, "target_classes": [encode_labels(classes)], "y_mean": [], "y_scale": [],
    }  # fmt: skip

    def loss(module: Any, batch: Sequence[Any]) -> Any:
        numeric, codes, soft = batch
        log_p = F.log_softmax(module(numeric, codes)[0], dim=1)
        return -(soft * log_p).sum(dim=1).mean()

    with torch_session(model.random_state, model.n_threads):
        model._restore_all(fitted)
        module = model._build_module()
        data = [
            torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)),
            torch.zeros((len(X), 0), dtype=torch.int64),
            torch.from_numpy(targets.astype(np.float32)),
        ]
        train_data, valid_data = _holdout(data, model.validation_fraction, model.random_state)
        result = train(
            module,
            lambda batch, _g: loss(module, batch),
            lambda batch, _g: {"loss": float(loss(module, batch))},
            train_data,
            valid_data,
            model._settings(),
        )
    model.module_ = module
    model.learning_curve_ = result.curve
    model.n_epochs_ = result.epochs_run
    model.best_epoch_ = result.best_epoch


def _holdout(data: list[Any], fraction: float, seed: int) -> tuple[list[Any], list[Any] | None]:
    import torch

    n = len(data[0])
    n_valid = round(n * fraction)
    if n_valid < 1 or n - n_valid < 2:
        return data, None
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    valid, rest = order[:n_valid], order[n_valid:]
    return [c[rest] for c in data], [c[valid] for c in data]
