"""The shared torch training loop: checkpoints, resume, divergence, schedules, callbacks."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from openmaas.errors import InvalidInput
from openmaas.ml.catalog.base import Algorithm, TrainingCallbacks
from openmaas.ml.catalog.torch.dnn import DNN
from openmaas.ml.catalog.torch.ncf import NCF
from openmaas.ml.catalog.torch.rnn import RNN
from openmaas.ml.catalog.torch.trainer import TrainingDiverged
from openmaas.ml.catalog.torch.vae import VAE


class Recorder(TrainingCallbacks):
    """Keeps every checkpoint; crashes after epoch ``crash_at``; resumes from ``resume``."""

    def __init__(self, crash_at: int | None = None, resume: bytes | None = None) -> None:
        self.crash_at = crash_at
        self.resume = resume
        self.epochs: list[int] = []
        self.metrics: list[dict[str, float]] = []
        self.checkpoints: dict[int, bytes] = {}

    def on_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        assert epoch in self.checkpoints  # checkpointed before it is reported
        self.epochs.append(epoch)
        self.metrics.append(metrics)
        if epoch == self.crash_at:
            raise KeyboardInterrupt("the worker died")

    def checkpoint(self, epoch: int, state: bytes) -> None:
        self.checkpoints[epoch] = state

    def resume_state(self) -> bytes | None:
        return self.resume


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(240, 6))
    return X, (X[:, 0] * X[:, 1] + X[:, 2] > 0).astype(int)


def _weights(model: Algorithm) -> dict[str, torch.Tensor]:
    return model.module_.state_dict()


def _cases() -> list[tuple[str, Algorithm, tuple[Any, ...]]]:
    X, y = _data()
    rng = np.random.RandomState(1)
    pairs = pd.DataFrame({"u": rng.randint(40, size=400), "i": rng.randint(30, size=400)})
    windows = rng.normal(size=(200, 6))
    return [
        # dropout, batch norm, mini-batches, plateau schedule, early stopping on a holdout
        (
            "dnn",
            DNN(
                epochs=12,
                batch_size=32,
                dropout=0.3,
                batch_norm=True,
                patience=3,
                lr_schedule="plateau",
                lr_decay_epochs=1,
                optimizer="momentum",
                learning_rate=0.05,
            ),
            (X, y),
        ),
        ("vae", VAE(epochs=6, batch_size=50, lr_schedule="cosine", patience=0), (X,)),
        (
            "ncf",
            NCF(
                epochs=6,
                batch_size=64,
                loss="bpr",
                lr_schedule="step",
                lr_decay_epochs=2,
                n_factors=4,
                width=8,
            ),
            (pairs,),
        ),
        (
            "rnn",
            RNN(
                epochs=5,
                batch_size=40,
                cell="lstm",
                hidden_size=8,
                optimizer="sgd",
                learning_rate=0.1,
            ),
            (windows[:, :5], windows[:, 5]),
        ),
    ]


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c[0])
def test_resumed_training_ends_where_an_uninterrupted_run_ends(case: Any) -> None:
    _, model, data = case
    full = Recorder()
    reference = model.__class__(**model.get_params()).fit(*data, callbacks=full)
    crash_at = 3
    crashed = Recorder(crash_at=crash_at)
    with pytest.raises(KeyboardInterrupt):
        model.__class__(**model.get_params()).fit(*data, callbacks=crashed)
    resumed = Recorder(resume=crashed.checkpoints[crash_at])
    model.fit(*data, callbacks=resumed)
    assert resumed.epochs == full.epochs[crash_at:]
    assert resumed.metrics == full.metrics[crash_at:]
    assert model.learning_curve_ == reference.learning_curve_
    assert model.best_epoch_ == reference.best_epoch_
    for key, value in _weights(reference).items():
        assert torch.equal(value, _weights(model)[key]), key


def test_a_checkpoint_of_another_run_is_refused() -> None:
    X, y = _data()
    first = Recorder()
    DNN(epochs=2, patience=0).fit(X, y, callbacks=first)
    with pytest.raises(InvalidInput, match="the checkpoint was written by a different training"):
        DNN(epochs=2, patience=0, width=32).fit(
            X, y, callbacks=Recorder(resume=first.checkpoints[1])
        )
    with pytest.raises(InvalidInput, match="cannot resume training: the checkpoint is unreadable"):
        DNN(epochs=2, patience=0).fit(X, y, callbacks=Recorder(resume=b"garbage"))


def test_a_finished_checkpoint_resumes_to_the_same_model() -> None:
    X, y = _data()
    first = Recorder()
    done = DNN(epochs=3, patience=0).fit(X, y, callbacks=first)
    again = Recorder(resume=first.checkpoints[3])
    resumed = DNN(epochs=3, patience=0).fit(X, y, callbacks=again)
    assert again.epochs == []
    np.testing.assert_array_equal(done.predict_proba(X), resumed.predict_proba(X))


def test_a_huge_learning_rate_fails_with_the_epoch_and_the_rate() -> None:
    X, _ = _data()
    target = X[:, 0] * 1e3
    model = DNN(
        "regression",
        learning_rate=1e3,
        optimizer="sgd",
        epochs=20,
        patience=0,
        max_gradient_norm=None,
    )
    with pytest.raises(
        TrainingDiverged,
        match=r"^loss became (NaN|infinite) at epoch 2 "
        r"\(learning rate 1000 may be too high\)$",
    ) as caught:
        model.fit(X, target)
    assert caught.value.details == {"epoch": 2, "reason": "inf_loss", "learning_rate": 1000.0}
    assert caught.value.code == "training_diverged" and caught.value.status == 422


def test_an_exploding_gradient_fails_before_the_weights_are_ruined() -> None:
    X, _ = _data()
    model = DNN(
        "regression",
        learning_rate=10.0,
        optimizer="sgd",
        epochs=20,
        patience=0,
        max_gradient_norm=100.0,
    )
    with pytest.raises(
        TrainingDiverged,
        match=r"^gradient norm \S+ exceeded "
        r"max_gradient_norm=100 at epoch \d+ \(learning rate 10 may be too high",
    ):
        model.fit(X, X[:, 0] * 50)
    clipped = DNN(
        "regression",
        learning_rate=0.01,
        optimizer="sgd",
        epochs=3,
        patience=0,
        clip_gradient_norm=0.5,
    ).fit(X, X[:, 0] * 50)
    assert np.isfinite(clipped.predict(X)).all()


@pytest.mark.parametrize("schedule", ["constant", "step", "cosine", "plateau"])
def test_learning_rate_schedules(schedule: str) -> None:
    X, y = _data()
    lrs: list[float] = []

    class Rates(TrainingCallbacks):
        def on_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
            lrs.append(optimiser_lr())

    model = DNN(
        epochs=6,
        lr_schedule=schedule,
        lr_decay_epochs=2,
        lr_decay=0.5,
        learning_rate=0.01,
        patience=0,
    )
    captured: list[torch.optim.Optimizer] = []
    original = torch.optim.Adam.__init__

    def spy(self: torch.optim.Adam, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        captured.append(self)

    def optimiser_lr() -> float:
        return float(captured[-1].param_groups[0]["lr"])

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim.Adam, "__init__", spy)
        model.fit(X, y, callbacks=Rates())
    assert len(lrs) == 6
    if schedule == "constant":
        assert lrs == [0.01] * 6
    elif schedule == "step":
        assert lrs == pytest.approx([0.01, 0.005, 0.005, 0.0025, 0.0025, 0.00125])
    elif schedule == "cosine":
        assert lrs == sorted(lrs, reverse=True) and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    else:
        assert "valid_loss" in model.learning_curve_.values  # plateau monitors a holdout


def test_early_stopping_keeps_the_best_epoch() -> None:
    X, y = _data()
    noisy = np.random.RandomState(0).permutation(y)  # nothing to learn: validation loss rises
    model = DNN(epochs=200, patience=4, learning_rate=0.05, width=128).fit(X, noisy)
    curve = model.learning_curve_.values
    assert model.n_epochs_ < 200 and model.n_epochs_ == model.best_epoch_ + 4
    assert min(curve["valid_loss"]) == curve["valid_loss"][model.best_epoch_ - 1]
    assert set(curve) == {"train_loss", "train_accuracy", "valid_loss", "valid_accuracy"}


def test_explicit_validation_data_is_used_instead_of_a_holdout() -> None:
    X, _ = _data()
    seen: list[dict[str, float]] = []

    class Keep(TrainingCallbacks):
        def on_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
            seen.append(metrics)

    model = DNN("regression", epochs=3, patience=5).fit(
        X[:200], X[:200, 0], X_valid=X[200:], y_valid=X[200:, 0], callbacks=Keep()
    )
    assert len(seen) == 3 and "valid_rmse" in seen[0]
    assert model.learning_curve_.values["valid_rmse"] == [m["valid_rmse"] for m in seen]


@pytest.mark.parametrize("batch_size", [0, 1, 7])
def test_full_batch_online_and_mini_batch_learning(batch_size: int) -> None:
    X, y = _data()
    model = DNN(
        epochs=2,
        batch_size=batch_size,
        optimizer="sgd",
        learning_rate=0.01,
        patience=0,
        batch_norm=batch_size != 1,
    )
    model.fit(X[:50], y[:50])
    assert np.isfinite(model.learning_curve_.values["train_loss"]).all()


def test_batch_norm_with_one_row_batches_is_refused_clearly() -> None:
    X, _ = _data()
    with pytest.raises(ValueError, match="batch_norm needs at least 2 samples; got 1 sample"):
        DNN("regression", batch_norm=True).fit(X[:1], [0.5])
    with pytest.raises(InvalidInput, match="batch_norm needs batches of at least 2 rows"):
        DNN("regression", batch_norm=True, batch_size=1).fit(X, X[:, 0])


def test_fitting_leaves_torch_global_state_alone() -> None:
    X, y = _data()
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    DNN(epochs=2, dropout=0.5, n_threads=2, patience=0).fit(X, y)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


def _linear_settings(batch_size: int) -> Any:
    from openmaas.ml.catalog.torch.trainer import TrainSettings

    return TrainSettings(
        epochs=2, batch_size=batch_size, optimizer="adam", learning_rate=0.01, momentum=0.0,
        weight_decay=0.0, lr_schedule="constant", lr_decay=0.1, lr_decay_epochs=1,
        patience=0, max_gradient_norm=None, clip_gradient_norm=None, seed=3,
    )  # fmt: skip


@pytest.mark.parametrize("batch_size", [0, 7, 16])
def test_every_row_is_trained_on_once_per_epoch_in_the_seeded_order(
    batch_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows are gathered in blocks (here of about 20 rows) and batches sliced from them:
    each batch is exactly the rows of the epoch's permutation, sparse columns included."""
    import scipy.sparse as sp

    from openmaas.ml.catalog.torch import trainer
    from openmaas.ml.catalog.torch.inputs import SparseRows

    monkeypatch.setattr(trainer, "GATHER_ROWS", 20)
    rows = torch.arange(50, dtype=torch.float32)[:, None]
    dense = SparseRows(sp.csr_array(np.arange(50, dtype=np.float64)[:, None] + 1))
    bounds = trainer._batch_bounds(50, batch_size)
    order = torch.randperm(50, generator=torch.Generator().manual_seed(0))
    seen = []
    for start, stop, (a, b) in trainer._shuffled_batches([rows, dense], order, bounds):
        assert torch.equal(a[:, 0], order[start:stop].float())
        assert torch.equal(b.to_dense()[:, 0], order[start:stop].float() + 1)
        seen.append((start, stop))
    assert seen == list(itertools.pairwise(bounds))


def test_running_sums_give_the_training_metrics_without_a_training_evaluation() -> None:
    from openmaas.ml.catalog.torch.trainer import train

    X = torch.randn(50, 3)
    y = X.sum(dim=1, keepdim=True)
    net = torch.nn.Linear(3, 1)

    def loss(batch: Any, _: torch.Generator) -> Any:
        error = torch.nn.functional.mse_loss(net(batch[0]), batch[1])
        return error, {"x": batch[0].sum(dim=0).detach(), "rows": torch.tensor(len(batch[0]))}

    evaluated: list[int] = []

    def evaluate(data: Any, _: torch.Generator) -> dict[str, float]:
        evaluated.append(len(data[0]))
        return {"loss": float(torch.nn.functional.mse_loss(net(data[0]), data[1]))}

    def running(means: dict[str, torch.Tensor]) -> dict[str, float]:
        return {"rows": float(means["rows"]), "x0": float(means["x"][0])}

    result = train(
        net, loss, evaluate, [X[:40], y[:40]], [X[40:], y[40:]], _linear_settings(16),
        running_fn=running,
    )  # fmt: skip
    curve = result.curve.values
    assert evaluated == [10, 10]  # the validation part only, once per epoch
    assert curve["train_rows"] == [1.0, 1.0]  # every row counted once
    assert curve["train_x0"] == pytest.approx([float(X[:40, 0].mean())] * 2, rel=1e-5)
    assert set(curve) == {"train_loss", "train_rows", "train_x0", "valid_loss"}


def test_the_dnn_reports_running_training_metrics() -> None:
    X, y = _data()
    model = DNN(epochs=3, patience=0).fit(X, y)
    accuracy = model.learning_curve_.values["train_accuracy"]
    assert len(accuracy) == 3 and all(0.5 < a <= 1.0 for a in accuracy)
    target = X[:, 0] * 10 + 5
    rmse = (
        DNN("regression", epochs=2, patience=0).fit(X, target).learning_curve_.values["train_rmse"]
    )
    assert rmse[1] < rmse[0] == pytest.approx(np.std(target), rel=0.2)  # in the target's units
