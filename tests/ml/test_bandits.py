"""Routing between versions: bandits learn the better version, splits hold their weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from openmaas.errors import InvalidInput
from openmaas.ml.bandits import (
    ArmStats,
    Bandit,
    EpsilonGreedy,
    Router,
    ThompsonSampling,
    TrafficSplit,
)

RATES = {"v1": 0.4, "v2": 0.6}
REQUESTS = 5000


def _bandits() -> list[Bandit]:
    return [ThompsonSampling(["v1", "v2"]), EpsilonGreedy(["v1", "v2"], epsilon=0.1)]


@pytest.mark.parametrize("kind", [0, 1], ids=["thompson", "epsilon-greedy"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sequential_updates_send_most_late_traffic_to_the_better_version(
    kind: int, seed: int
) -> None:
    bandit = _bandits()[kind]
    rng = np.random.default_rng(seed)
    chosen = []
    for _ in range(REQUESTS):
        arm = bandit.choose(rng)
        bandit.update(arm, float(rng.random() < RATES[arm]))
        chosen.append(arm)
    assert chosen[-1000:].count("v2") >= 750


@pytest.mark.parametrize("kind", [0, 1], ids=["thompson", "epsilon-greedy"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_replicas_syncing_every_50_requests_learn_the_better_version(kind: int, seed: int) -> None:
    """Four replicas route from frozen statistics and merge their rewards every 50 requests."""
    rng = np.random.default_rng(seed)
    replicas = [_bandits()[kind] for _ in range(4)]
    shared = ArmStats(["v1", "v2"])
    rates = np.array([RATES[a] for a in replicas[0].arms])
    chosen: list[np.ndarray] = []
    for step in range(REQUESTS // 50):
        replica = replicas[step % 4]
        arms = replica.choose_many(50, rng)
        replica.update_many(np.asarray(replica.arms)[arms], rng.random(50) < rates[arms])
        chosen.append(arms)
        for r in replicas:  # the sync: deltas go through JSON to the store and back
            shared.merge(ArmStats.from_dict(json.loads(json.dumps(r.flush().to_dict()))))
        for r in replicas:
            r.sync(ArmStats.from_dict(shared.to_dict()))
    last = np.concatenate(chosen)[-1000:]
    assert np.mean(np.asarray(replicas[0].arms)[last] == "v2") >= 0.75
    assert shared.pulls.sum() == REQUESTS


def test_merged_statistics_are_the_sum_of_the_replicas() -> None:
    a, b = ThompsonSampling(["v1", "v2"]), ThompsonSampling(["v1", "v2"])
    a.update_many(["v1", "v2", "v2"], [1.0, 0.0, 1.0])
    b.update("v2", 0.5)
    b.update("v0", 1.0)  # feedback for a version no longer routed to still counts
    total = ArmStats(["v1", "v2"])
    total.merge(a.flush())
    total.merge(b.flush())
    assert total.to_dict() == {
        "arms": ["v1", "v2", "v0"],
        "pulls": [1, 3, 1],
        "rewards": [1.0, 1.5, 1.0],
    }
    assert a.flush().pulls.sum() == 0
    a.update("v1", 1.0)
    a.sync(total)  # pending updates survive a sync until flushed
    assert a.stats.aligned(["v1", "v2"])[0].tolist() == [2, 3]


def test_every_router_fits_the_protocol_and_a_partial_bandit_does_not_instantiate() -> None:
    assert all(isinstance(r, Router) for r in [*_bandits(), TrafficSplit({"v1": 100})])

    class Partial(Bandit):
        pass

    with pytest.raises(TypeError, match="abstract"):
        Partial(["v1"])  # type: ignore[abstract]


def test_untried_versions_are_tried_first_by_epsilon_greedy() -> None:
    bandit = EpsilonGreedy(["v1", "v2", "v3"], epsilon=0.0)
    bandit.update("v1", 1.0)
    bandit.update("v2", 1.0)
    assert set(bandit.choose_many(100, np.random.default_rng(0)).tolist()) == {2}


def test_bad_rewards_and_arms() -> None:
    with pytest.raises(InvalidInput, match="rewards must be numbers between 0 and 1"):
        ThompsonSampling(["v1"]).update("v1", 2.0)
    with pytest.raises(InvalidInput, match="rewards must be finite numbers"):
        EpsilonGreedy(["v1"]).update("v1", float("nan"))
    with pytest.raises(InvalidInput, match="routing names no version"):
        ThompsonSampling([])
    with pytest.raises(InvalidInput, match="routing names a version more than once"):
        EpsilonGreedy(["v1", "v1"])
    with pytest.raises(InvalidInput, match=r"epsilon must be between 0 and 1, got 1\.5"):
        EpsilonGreedy(["v1"], epsilon=1.5)


@pytest.mark.parametrize(
    "weights", [{"stable": 90, "canary": 10}, {"a": 50, "b": 30, "c": 20}, {"a": 0, "b": 100}]
)
def test_traffic_split_holds_within_two_percent_over_10000_requests(
    weights: dict[str, float],
) -> None:
    split = TrafficSplit(weights)
    chosen = split.choose_many(10_000, np.random.default_rng(3))
    observed = np.bincount(chosen, minlength=len(weights)) / 100
    for arm, share in zip(split.arms, observed, strict=True):
        assert abs(share - weights[arm]) <= 2
    assert split.choose(np.random.default_rng(4)) in weights


def test_canary_split() -> None:
    split = TrafficSplit.canary("v1", "v2", 5)
    assert split.to_dict() == {"v1": 95.0, "v2": 5.0}
    observed = np.mean(split.choose_many(10_000, np.random.default_rng(5)) == 1) * 100
    assert abs(observed - 5) <= 2


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"v1": 60, "v2": 30}, r"traffic weights must sum to 100, got 90 \(v1: 60, v2: 30\)"),
        ({"v1": 120, "v2": -20}, "traffic weight of version 'v2' must be a number from 0 to 100"),
        ({"v1": float("nan")}, "traffic weight of version 'v1' must be a number from 0 to 100"),
        ({"v1": "100"}, "traffic weight of version 'v1' must be a number from 0 to 100"),
        ({}, "routing names no version"),
        ({"": 100}, "version names must be non-empty strings"),
    ],
)
def test_invalid_traffic_split(weights: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        TrafficSplit(weights)


def test_invalid_canary() -> None:
    with pytest.raises(InvalidInput, match="canary percent must be from 0 to 100, got 101"):
        TrafficSplit.canary("v1", "v2", 101)
    with pytest.raises(InvalidInput, match="a canary must be a different version"):
        TrafficSplit.canary("v1", "v1", 10)
