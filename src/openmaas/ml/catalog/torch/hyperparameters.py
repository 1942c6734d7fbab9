"""The optimisation hyperparameters every torch algorithm shares, documented once."""

from __future__ import annotations

from typing import Any

from openmaas.ml.catalog.base import HyperParameter

__all__ = ["SEARCH_RANGES", "training_hyperparameters"]

SEARCH_RANGES: dict[str, dict[str, Any]] = {
    "batch_size": {"low": 16, "high": 1024, "log": True},
    "learning_rate": {"low": 1e-4, "high": 1e-1, "log": True},
    "weight_decay": {"low": 1e-8, "high": 1e-2, "log": True},
}
"""Narrower ranges tuning samples from (``batch_size`` 0 = full batch is not sampled)."""


def training_hyperparameters(**defaults: Any) -> list[HyperParameter]:
    """The optimisation hyperparameters every torch algorithm takes, with its defaults."""
    d = {
        "epochs": 100, "batch_size": 128, "optimizer": "adam", "learning_rate": 1e-3,
        "weight_decay": 0.0, "lr_schedule": "constant", "patience": 10, **defaults,
    }  # fmt: skip
    hp = HyperParameter
    return [
        hp(
            "epochs",
            "int",
            d["epochs"],
            "Most passes over the training data (early stopping may end sooner).",
            low=1,
            high=10_000,
            tunable=False,
        ),
        hp(
            "batch_size",
            "int",
            d["batch_size"],
            "Rows per gradient step: 0 = full batch (gradient descent), 1 = online learning.",
            low=0,
            high=1_000_000,
        ),
        hp(
            "optimizer",
            "str",
            d["optimizer"],
            "sgd, momentum (SGD with momentum) or adam.",
            choices=("sgd", "momentum", "adam"),
        ),
        hp(
            "learning_rate",
            "float",
            d["learning_rate"],
            "Step size of the optimiser.",
            low=1e-7,
            high=1e3,
            log=True,
        ),
        hp(
            "momentum",
            "float",
            0.9,
            "Momentum of the momentum optimiser.",
            low=0.0,
            high=0.999,
            tunable=False,
        ),
        hp(
            "weight_decay",
            "float",
            d["weight_decay"],
            "L2 penalty on the weights.",
            low=0.0,
            high=1.0,
        ),
        hp(
            "lr_schedule",
            "str",
            d["lr_schedule"],
            "Learning-rate schedule: constant; step (times lr_decay every lr_decay_epochs); "
            "cosine (annealed to 0 over epochs); plateau (times lr_decay after lr_decay_epochs "
            "epochs without improvement of the validation loss, else the training loss).",
            choices=("constant", "step", "cosine", "plateau"),
        ),
        hp(
            "lr_decay",
            "float",
            0.1,
            "Factor of the step and plateau schedules.",
            low=0.001,
            high=1.0,
            tunable=False,
        ),
        hp(
            "lr_decay_epochs",
            "int",
            10,
            "Epochs of the step and plateau schedules.",
            low=1,
            high=10_000,
            tunable=False,
        ),
        hp(
            "patience",
            "int",
            d["patience"],
            "Early stopping: stop after this many epochs without a better validation loss and "
            "keep the best weights; 0 = train all epochs.",
            low=0,
            high=10_000,
            tunable=False,
        ),
        hp(
            "validation_fraction",
            "float",
            0.1,
            "Share of training rows held out to monitor when no validation data is given "
            "(only if patience > 0 or the schedule is plateau).",
            low=0.0,
            high=0.5,
            tunable=False,
        ),
        hp(
            "max_gradient_norm",
            "float",
            1e4,
            "Training fails (diverged) when the gradient norm exceeds this; null = only when "
            "it is not finite.",
            low=1e-3,
            nullable=True,
            tunable=False,
        ),
        hp(
            "clip_gradient_norm",
            "float",
            None,
            "Rescale gradients whose norm exceeds this; null = no clipping.",
            low=1e-6,
            high=1e6,
            nullable=True,
            tunable=False,
        ),
        hp(
            "random_state",
            "int",
            0,
            "Seed of initialisation, shuffling and sampling.",
            low=0,
            high=2**32 - 1,
            tunable=False,
        ),
        hp(
            "n_threads",
            "int",
            1,
            "CPU threads torch uses while fitting and predicting.",
            low=1,
            high=256,
            tunable=False,
        ),
    ]
