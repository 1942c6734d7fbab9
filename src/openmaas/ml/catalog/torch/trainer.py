"""The one training loop every torch algorithm runs.

:func:`train` takes a module, a batch loss and an evaluation function and runs
mini-batch gradient descent over tensors that share their first dimension:

- batches come from a seeded permutation per epoch (``batch_size`` 0 = full
  batch, 1 = online learning); a trailing batch of one row is merged into the
  one before it, so batch normalisation always sees two rows;
- optimisers ``sgd``, ``momentum`` (SGD with momentum), ``adam``; learning-rate
  schedules ``constant``, ``step``, ``cosine``, ``plateau`` (the monitored loss);
- the monitored loss is the validation loss when there is validation data,
  else the training loss; early stopping (``patience`` > 0) needs validation
  data and restores the best weights at the end;
- every epoch appends ``train_loss`` (mean batch loss), ``valid_loss`` and the
  evaluation's other metrics (``valid_*``) to the learning curve, and the
  training metrics ``train_*``: when the loss function returns running sums
  with each batch's loss (see :data:`BatchLoss`), they are running metrics
  over the epoch's batches as Keras reports them (no pass over the training
  rows; the weights move during the epoch and dropout is on), else the
  evaluation of at most :data:`TRAIN_EVAL_ROWS` training rows. It then hands a
  checkpoint to ``callbacks.checkpoint`` (when ``callbacks.checkpoint_due``) and
  then reports ``callbacks.on_epoch``
  (so every reported epoch can be resumed). Epochs count from 1;
- a non-finite loss (checked every batch), or a gradient norm that is not
  finite or exceeds ``max_gradient_norm``, raises :class:`TrainingDiverged`
  naming the epoch and the learning rate. The gradient norm costs a tenth of
  a small model's step, so it is checked on each of a fit's first
  :data:`GRAD_CHECK_FIRST` batches (where a too-high learning rate shows) and
  then every :data:`GRAD_CHECK_EVERY` batches (every batch with
  ``clip_gradient_norm``, which needs it anyway); a gradient that explodes in
  between makes the loss non-finite within a step or two.

Determinism: callers run :func:`train` inside :func:`torch_session`, which
seeds torch's global generator (dropout, initialisation) and restores it
afterwards; shuffling and sampling draw from a :class:`torch.Generator` the loop
owns. A checkpoint holds the weights, the optimiser, the schedule, both
generators, the epoch and the early-stopping state, so a fit resumed from
``callbacks.resume_state()`` continues at the next epoch and ends with the same
weights as an uninterrupted one. Checkpoints are internal: ``torch.save`` of
tensors and plain containers, read back with ``weights_only=True``.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import io
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from openmaas.errors import InvalidInput, TrainingDiverged
from openmaas.ml.catalog.base import LearningCurve, TrainingCallbacks
from openmaas.ml.catalog.torch.inputs import materialise, take

__all__ = [
    "TRAIN_EVAL_ROWS",
    "BatchLoss",
    "Batchable",
    "TrainResult",
    "TrainSettings",
    "TrainingDiverged",
    "torch_session",
    "train",
]

TRAIN_EVAL_ROWS = 10_000
"""Training rows the per-epoch training metrics are computed on (a fixed subset)."""

GATHER_ROWS = 16_384
"""Rows of shuffled training data gathered at once (see :func:`_shuffled_batches`)."""

GRAD_CHECK_FIRST = 64
GRAD_CHECK_EVERY = 8
"""Gradient norms are checked on a fit's first GRAD_CHECK_FIRST batches, then every
GRAD_CHECK_EVERY batches (see the module docstring)."""

CHECKPOINT_FORMAT = 1


class Batchable(Protocol):
    """A column of training data: a tensor, or anything indexable by a row-index tensor
    (:func:`~.inputs.take`) whose rows then slice into a batch."""

    def __getitem__(self, index: torch.Tensor | slice) -> Any: ...

    def __len__(self) -> int: ...


Data = Sequence[Batchable]
BatchLoss = torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]
"""A batch's loss, or the loss and running sums: named sums over the batch's rows
(detached tensors) that the trainer adds up over the epoch and divides by its rows.
Their epoch means give the training metrics (``running_fn``), so the loop skips
the separate training evaluation."""
LossFn = Callable[[Sequence[Any], torch.Generator], BatchLoss]
EvalFn = Callable[[Sequence[Any], torch.Generator], dict[str, float]]
RunningFn = Callable[[dict[str, torch.Tensor]], dict[str, float]]


@dataclass(frozen=True)
class TrainSettings:
    """The optimisation hyperparameters shared by every torch algorithm."""

    epochs: int
    batch_size: int  # 0 = full batch
    optimizer: str  # sgd | momentum | adam
    learning_rate: float
    momentum: float
    weight_decay: float
    lr_schedule: str  # constant | step | cosine | plateau
    lr_decay: float
    lr_decay_epochs: int
    patience: int  # 0 = no early stopping
    max_gradient_norm: float | None  # None = only non-finite norms fail
    clip_gradient_norm: float | None
    seed: int


@dataclass
class TrainResult:
    curve: LearningCurve
    epochs_run: int
    best_epoch: int
    stopped_early: bool


@dataclass
class _LoopState:
    epoch: int = 0
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped: bool = False
    best_weights: dict[str, torch.Tensor] | None = None
    curve: LearningCurve = field(default_factory=LearningCurve)


@contextlib.contextmanager
def torch_session(seed: int | None, n_threads: int) -> Iterator[None]:
    """Run torch on ``n_threads`` threads, seeded if ``seed`` is given; restore both after.

    The thread count and the global generator are process-wide: a process runs
    one fit at a time (as the job workers do).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        if seed is None:
            yield
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                yield
    finally:
        torch.set_num_threads(threads)


def train(
    module: nn.Module,
    loss_fn: LossFn,
    eval_fn: EvalFn,
    train_data: Data,
    valid_data: Data | None,
    settings: TrainSettings,
    callbacks: TrainingCallbacks | None = None,
    fingerprint: Callable[[], str] | None = None,
    running_fn: RunningFn | None = None,
) -> TrainResult:
    """Fit ``module`` in place (see the module docstring); return its learning curve.

    ``running_fn`` turns the epoch means of the running sums ``loss_fn`` returns
    into the ``train_*`` metrics (default: each mean as a number).
    """
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = _make_optimizer(params, settings)
    scheduler = _make_scheduler(optimizer, settings)
    generator = torch.Generator().manual_seed(settings.seed)
    state = _LoopState()
    checkpointing = callbacks is not None and _overrides(callbacks, "checkpoint")
    blob = callbacks.resume_state() if callbacks is not None else None
    key = fingerprint() if fingerprint is not None and (checkpointing or blob) else ""
    if blob is not None:
        _restore(blob, key, module, optimizer, scheduler, generator, state)
    n_rows = len(train_data[0])
    bounds = _batch_bounds(n_rows, settings.batch_size)
    train_eval: Data | None = None  # made at the first epoch without running sums
    valid_eval = None if valid_data is None else [materialise(c) for c in valid_data]
    while state.epoch < settings.epochs and not state.stopped:
        epoch = state.epoch + 1
        module.train()
        train_loss, means = _run_epoch(
            module, params, optimizer, loss_fn, train_data, bounds, generator, settings, epoch
        )
        metrics = {"train_loss": train_loss}
        module.eval()
        with torch.no_grad():
            if means:
                metrics.update(_prefixed("train", (running_fn or _numbers)(means)))
            else:
                if train_eval is None:
                    train_eval = _eval_subset(train_data, settings.seed)
                metrics.update(_prefixed("train", eval_fn(train_eval, _eval_generator(settings))))
            if valid_eval is not None:
                metrics.update(_prefixed("valid", eval_fn(valid_eval, _eval_generator(settings))))
        monitored = metrics.get("valid_loss", train_loss)
        _step_schedule(scheduler, monitored)
        _early_stopping(state, module, monitored, epoch, settings, valid_data is not None)
        state.curve.add(**metrics)
        state.epoch = epoch
        if checkpointing and callbacks is not None and callbacks.checkpoint_due(epoch):
            callbacks.checkpoint(
                epoch, _serialise(key, module, optimizer, scheduler, generator, state)
            )
        if callbacks is not None:
            callbacks.on_epoch(epoch, metrics)
    if state.best_weights is not None:
        module.load_state_dict(state.best_weights)
    module.eval()
    best = state.best_epoch if state.best_weights is not None else state.epoch
    return TrainResult(state.curve, state.epoch, best, state.stopped)


def _overrides(callbacks: TrainingCallbacks, method: str) -> bool:
    return getattr(type(callbacks), method) is not getattr(TrainingCallbacks, method)


def _prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    out = {f"{prefix}_{k}": float(v) for k, v in metrics.items()}
    if prefix == "train":  # the training loss is the mean batch loss, not this one
        out.pop("train_loss", None)
    return out


def _numbers(means: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v.double().mean()) for k, v in means.items()}


def _eval_generator(settings: TrainSettings) -> torch.Generator:
    """A fresh generator per evaluation: evaluations never move the training streams."""
    return torch.Generator().manual_seed(settings.seed + 1)


def _eval_subset(data: Data, seed: int) -> Data:
    n = len(data[0])
    if n > TRAIN_EVAL_ROWS:
        rows = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 2))
        data = [take(column, rows[:TRAIN_EVAL_ROWS].sort().values) for column in data]
    return [materialise(column) for column in data]


def _batch_bounds(n_rows: int, batch_size: int) -> list[int]:
    size = n_rows if batch_size <= 0 else min(batch_size, n_rows)
    bounds = [*range(0, n_rows, size), n_rows]
    if size > 1 and len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]  # never a lone trailing row (batch norm needs two)
    return bounds


def _run_epoch(
    module: nn.Module,
    params: list[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    data: Data,
    bounds: list[int],
    generator: torch.Generator,
    settings: TrainSettings,
    epoch: int,
) -> tuple[float, dict[str, torch.Tensor]]:
    """One pass over the shuffled rows: the mean batch loss and the running sums' means."""
    order = torch.randperm(bounds[-1], generator=generator)
    total = 0.0
    sums: dict[str, torch.Tensor] = {}
    every = 1 if settings.clip_gradient_norm is not None else GRAD_CHECK_EVERY
    first = (epoch - 1) * (len(bounds) - 1)  # batches of this fit before this epoch
    for step, (start, stop, batch) in enumerate(_shuffled_batches(data, order, bounds), first):
        loss = loss_fn(batch, generator)
        if isinstance(loss, tuple):
            loss, batch_sums = loss
            _add_sums(sums, batch_sums)
        value = float(loss.detach())
        lr = optimizer.param_groups[0]["lr"]
        if not math.isfinite(value):
            kind = "NaN" if math.isnan(value) else "infinite"
            raise TrainingDiverged(
                f"loss became {kind} at epoch {epoch} (learning rate {lr:g} may be too high)",
                details={
                    "epoch": epoch,
                    "reason": "nan_loss" if kind == "NaN" else "inf_loss",
                    "learning_rate": lr,
                },
            )
        for p in params:  # optimizer.zero_grad(set_to_none=True), without its profiler hooks
            p.grad = None
        loss.backward()  # type: ignore[no-untyped-call]
        if step < GRAD_CHECK_FIRST or step % every == 0:
            _check_gradients(params, settings, epoch, lr)
        optimizer.step()
        total += value * (stop - start)
    return total / bounds[-1], {name: v / bounds[-1] for name, v in sums.items()}


def _add_sums(sums: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> None:
    """Add a batch's running sums to the epoch's, in place (no copy, no sync per batch)."""
    for name, value in batch.items():
        if name in sums:
            sums[name] += value
        else:
            sums[name] = value.detach().clone()


def _shuffled_batches(
    data: Data, order: torch.Tensor, bounds: list[int]
) -> Iterator[tuple[int, int, list[Any]]]:
    """``(start, stop, batch)`` per batch of the epoch whose row order is ``order``.

    Rows are gathered once per block of about :data:`GATHER_ROWS` rows (whole
    batches) and each batch is a contiguous slice of its block: a gather per
    batch and column costs as much as a small layer, a slice next to nothing.
    The batches hold exactly the rows ``order[start:stop]``, in that order.
    """
    n_batches = len(bounds) - 1
    i = 0
    while i < n_batches:
        # the batches i..j-1 of this block: at least one, at most GATHER_ROWS rows if more
        j = max(i + 1, bisect.bisect_right(bounds, bounds[i] + GATHER_ROWS, lo=i + 1) - 1)
        low = bounds[i]
        rows = order[low : bounds[j]]
        block = [take(column, rows) for column in data]
        for start, stop in itertools.pairwise(bounds[i : j + 1]):
            yield start, stop, [c[start - low : stop - low] for c in block]
        i = j


def _check_gradients(
    params: list[nn.Parameter], settings: TrainSettings, epoch: int, lr: float
) -> None:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    norm = torch.nn.utils.get_total_norm(grads)
    value = float(norm)
    limit = settings.max_gradient_norm
    if not math.isfinite(value) or (limit is not None and value > limit):
        what = (
            f"gradient norm {value:.3g} exceeded max_gradient_norm={limit:g}"
            if math.isfinite(value)
            else "gradient norm became infinite or NaN"
        )
        raise TrainingDiverged(
            f"{what} at epoch {epoch} (learning rate {lr:g} may be too high; lower it or set "
            "clip_gradient_norm)",
            details={
                "epoch": epoch,
                "reason": "gradient_norm",
                "learning_rate": lr,
                "gradient_norm": value if math.isfinite(value) else None,
            },
        )
    if settings.clip_gradient_norm is not None:
        torch.nn.utils.clip_grads_with_norm_(params, settings.clip_gradient_norm, norm)


def _make_optimizer(params: list[nn.Parameter], s: TrainSettings) -> torch.optim.Optimizer:
    # fused: one kernel updates every parameter. A small model's optimiser step is mostly
    # the per-tensor dispatch of the foreach version: fused, a batch of a 128-wide MLP
    # trains 20% faster
    fused = _can_fuse(params)
    if s.optimizer == "adam":
        return torch.optim.Adam(
            params, lr=s.learning_rate, weight_decay=s.weight_decay, foreach=not fused, fused=fused
        )
    momentum = s.momentum if s.optimizer == "momentum" else 0.0
    return torch.optim.SGD(
        params,
        lr=s.learning_rate,
        momentum=momentum,
        weight_decay=s.weight_decay,
        foreach=not fused,
        fused=fused,
    )


def _can_fuse(params: list[nn.Parameter]) -> bool:
    """Whether torch has fused optimiser kernels for every parameter (else: ``foreach``)."""
    return all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params)


def _make_scheduler(optimizer: torch.optim.Optimizer, s: TrainSettings) -> Any:
    sched = torch.optim.lr_scheduler
    if s.lr_schedule == "step":
        return sched.StepLR(optimizer, step_size=s.lr_decay_epochs, gamma=s.lr_decay)
    if s.lr_schedule == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=max(1, s.epochs))
    if s.lr_schedule == "plateau":
        return sched.ReduceLROnPlateau(optimizer, factor=s.lr_decay, patience=s.lr_decay_epochs)
    return None


def _step_schedule(scheduler: Any, monitored: float) -> None:
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(monitored)
    elif scheduler is not None:
        scheduler.step()


def _early_stopping(
    state: _LoopState,
    module: nn.Module,
    monitored: float,
    epoch: int,
    settings: TrainSettings,
    has_valid: bool,
) -> None:
    if not has_valid or settings.patience <= 0:
        return
    if monitored < state.best_loss:
        state.best_loss, state.best_epoch, state.bad_epochs = monitored, epoch, 0
        state.best_weights = copy.deepcopy(module.state_dict())
    else:
        state.bad_epochs += 1
        if settings.patience > 0 and state.bad_epochs >= settings.patience:
            state.stopped = True


def _serialise(
    key: str,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generator: torch.Generator,
    state: _LoopState,
) -> bytes:
    payload = {
        "format": CHECKPOINT_FORMAT,
        "fingerprint": key,
        "epoch": state.epoch,
        "module": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "torch_rng": torch.get_rng_state(),
        "generator": generator.get_state(),
        "best": {
            "loss": state.best_loss,
            "epoch": state.best_epoch,
            "bad_epochs": state.bad_epochs,
            "stopped": state.stopped,
            "weights": state.best_weights,
        },
        "curve": state.curve.values,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _restore(
    blob: bytes,
    key: str,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generator: torch.Generator,
    state: _LoopState,
) -> None:
    try:
        payload = torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")
    except Exception as e:  # a truncated or foreign blob
        raise InvalidInput(f"cannot resume training: the checkpoint is unreadable ({e})") from e
    if payload.get("format") != CHECKPOINT_FORMAT or payload.get("fingerprint") != key:
        raise InvalidInput(
            "cannot resume training: the checkpoint was written by a different training run "
            "(its hyperparameters or data differ); start the fit afresh",
            details={"epoch": payload.get("epoch")},
        )
    module.load_state_dict(payload["module"])
    optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(payload["scheduler"])
    torch.set_rng_state(payload["torch_rng"])
    generator.set_state(payload["generator"])
    best = payload["best"]
    state.epoch = int(payload["epoch"])
    state.best_loss = float(best["loss"])
    state.best_epoch = int(best["epoch"])
    state.bad_epochs = int(best["bad_epochs"])
    state.stopped = bool(best["stopped"])
    state.best_weights = best["weights"]
    state.curve = LearningCurve({k: list(v) for k, v in payload["curve"].items()})
