"""Routing requests between an endpoint's model versions: fixed split and bandits.

Every :class:`Router` has ``arms`` (version names), ``choose(rng) -> name``
for one request (a few microseconds) and ``choose_many(n, rng) -> indices
into arms`` for a batch, drawn in one vectorised call.

* :class:`TrafficSplit`: fixed weights summing to 100 (a canary is
  ``TrafficSplit.canary("v1", "v2", 5)``); invalid weights raise
  :class:`~openmaas.errors.InvalidInput` naming the problem.
* :class:`ThompsonSampling` and :class:`EpsilonGreedy`: learn online from
  rewards posted as feedback.

Bandit statistics are pulls and reward sums per arm (:class:`ArmStats`), so
replicas' statistics add up. A replica routes with ``stats`` (the shared
statistics it last synced plus its own updates since), keeps its own updates
since the last flush in ``pending``, and about every second does::

    delta = bandit.flush()               # this replica's updates, cleared
    shared = store_add(delta)            # the store adds deltas of all replicas
    bandit.sync(shared)                  # route with everyone's statistics

Within a sync period a batch draws independently from frozen statistics, as
every replica does between syncs; the delayed updates cost a little extra
exploration, not correctness.
"""

from __future__ import annotations

import bisect
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from openmaas.errors import InvalidInput

__all__ = ["ArmStats", "Bandit", "EpsilonGreedy", "Router", "ThompsonSampling", "TrafficSplit"]


@runtime_checkable
class Router(Protocol):
    """What the data plane routes with: a fixed split or a bandit."""

    arms: list[str]

    def choose(self, rng: np.random.Generator) -> str: ...

    def choose_many(self, n: int, rng: np.random.Generator) -> npt.NDArray[np.int64]: ...


class ArmStats:
    """Pulls and reward sums per arm; merging adds them arm by arm (by name)."""

    def __init__(
        self,
        arms: Iterable[str],
        pulls: npt.ArrayLike | None = None,
        rewards: npt.ArrayLike | None = None,
    ) -> None:
        self.arms = list(arms)
        self._index = {a: i for i, a in enumerate(self.arms)}
        k = len(self.arms)
        self.pulls = np.zeros(k, np.int64) if pulls is None else np.asarray(pulls, np.int64)
        self.rewards = np.zeros(k) if rewards is None else np.asarray(rewards, np.float64)
        if self.pulls.shape != (k,) or self.rewards.shape != (k,):
            raise InvalidInput("bandit statistics need one pull count and reward sum per arm")

    def _slot(self, arm: str) -> int:
        if arm not in self._index:  # feedback for a version no longer routed to still counts
            self._index[arm] = len(self.arms)
            self.arms.append(arm)
            self.pulls = np.append(self.pulls, 0)
            self.rewards = np.append(self.rewards, 0.0)
        return self._index[arm]

    def add_one(self, arm: str, reward: float) -> None:
        """Record one request's reward (the per-feedback path: no numpy arrays built)."""
        i = self._slot(arm)
        self.pulls[i] += 1
        self.rewards[i] += reward

    def add(self, arms: npt.ArrayLike, rewards: npt.ArrayLike) -> None:
        """Record rewards of requests answered by the named arms."""
        names = np.asarray(arms, dtype=str).ravel()
        r = np.asarray(rewards, dtype=np.float64).ravel()
        if names.size != r.size:
            raise InvalidInput(f"{names.size} arms but {r.size} rewards")
        uniq, inverse = np.unique(names, return_inverse=True)
        slots = np.asarray([self._slot(str(a)) for a in uniq], dtype=np.int64)[inverse]
        k = len(self.arms)
        self.pulls += np.bincount(slots, minlength=k)
        self.rewards += np.bincount(slots, weights=r, minlength=k)

    def merge(self, other: ArmStats) -> None:
        for a, n, r in zip(other.arms, other.pulls, other.rewards, strict=True):
            i = self._slot(a)
            self.pulls[i] += n
            self.rewards[i] += r

    def aligned(self, arms: Sequence[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Pulls and reward sums of ``arms``, in that order (zero for arms not seen)."""
        idx = [self._index.get(a, -1) for a in arms]
        pulls = np.asarray([self.pulls[i] if i >= 0 else 0 for i in idx], dtype=np.int64)
        rewards = np.asarray([self.rewards[i] if i >= 0 else 0.0 for i in idx])
        return pulls, rewards

    def to_dict(self) -> dict[str, Any]:
        return {
            "arms": list(self.arms),
            "pulls": self.pulls.tolist(),
            "rewards": self.rewards.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ArmStats:
        return cls(d["arms"], d["pulls"], d["rewards"])


class Bandit(ABC):
    """A router that learns from rewards; subclasses decide how to choose."""

    reward_range: tuple[float, float] = (-math.inf, math.inf)
    reward_error = "rewards must be finite numbers"

    def __init__(self, arms: Sequence[str]) -> None:
        self.arms = _check_arms(arms)
        self.stats = ArmStats(self.arms)
        self.pending = ArmStats(self.arms)

    def choose(self, rng: np.random.Generator) -> str:
        """The version one request goes to."""
        return self.arms[int(self.choose_many(1, rng)[0])]

    @abstractmethod
    def choose_many(self, n: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
        """Indices into ``arms`` for ``n`` requests."""

    def update(self, arm: str, reward: float) -> None:
        """Record one request's reward."""
        r = float(reward)
        if not (math.isfinite(r) and self.reward_range[0] <= r <= self.reward_range[1]):
            raise InvalidInput(self.reward_error)
        self.stats.add_one(arm, r)
        self.pending.add_one(arm, r)

    def update_many(self, arms: Sequence[str] | npt.ArrayLike, rewards: npt.ArrayLike) -> None:
        """Record a batch of rewards (feedback) for the versions that answered."""
        r = np.asarray(rewards, dtype=np.float64)
        lo, hi = self.reward_range
        if not (np.isfinite(r).all() and (r >= lo).all() and (r <= hi).all()):
            raise InvalidInput(self.reward_error)
        self.stats.add(arms, r)
        self.pending.add(arms, r)

    def flush(self) -> ArmStats:
        """This replica's updates since the last flush, to be added to the shared statistics."""
        out, self.pending = self.pending, ArmStats(self.arms)
        return out

    def sync(self, shared: ArmStats) -> None:
        """Route with the shared statistics (all replicas' flushed updates) plus pending ones."""
        stats = ArmStats(self.arms)  # keeps this router's arms first, in order
        stats.merge(shared)
        stats.merge(self.pending)
        self.stats = stats

    def _aligned(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Pulls and reward sums of ``arms``: ``stats`` always lists them first, in order."""
        k = len(self.arms)
        return self.stats.pulls[:k], self.stats.rewards[:k]


class ThompsonSampling(Bandit):
    """Thompson sampling with a Beta-Bernoulli model per arm (Beta(1, 1) prior).

    Rewards must lie in [0, 1]. A reward ``r`` counts as ``r`` successes and
    ``1 - r`` failures, so sums stay additive across replicas and the
    posterior mean is the mean reward. For non-binary rewards the posterior is
    as wide as for a Bernoulli arm of that mean, which is the widest a [0, 1]
    reward can need: such arms are explored somewhat more than necessary,
    never less.
    """

    def __init__(self, arms: Sequence[str], *, prior: tuple[float, float] = (1.0, 1.0)) -> None:
        super().__init__(arms)
        if not (prior[0] > 0 and prior[1] > 0):
            raise InvalidInput("Thompson sampling needs a positive Beta prior")
        self.prior = prior

    reward_range = (0.0, 1.0)
    reward_error = "Thompson sampling rewards must be numbers between 0 and 1"

    def choose(self, rng: np.random.Generator) -> str:
        pulls, rewards = self._aligned()
        best, best_draw = 0, -1.0
        for k in range(len(self.arms)):  # scalar draws: a one-row request's hot path
            r = float(rewards[k])
            draw = rng.beta(self.prior[0] + r, self.prior[1] + max(float(pulls[k]) - r, 0.0))
            if draw > best_draw:
                best, best_draw = k, draw
        return self.arms[best]

    def choose_many(self, n: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
        pulls, rewards = self._aligned()
        a = self.prior[0] + rewards
        b = self.prior[1] + np.maximum(pulls - rewards, 0.0)
        draws = np.empty((n, a.size))
        for k in range(a.size):  # scalar parameters: numpy's array-parameter path costs ~20 us
            draws[:, k] = rng.beta(float(a[k]), float(b[k]), size=n)
        return np.asarray(draws.argmax(axis=1), dtype=np.int64)


class EpsilonGreedy(Bandit):
    """The best mean reward so far, except a random version for a share ``epsilon`` of requests.

    Versions never rewarded count as best, so each is tried first; ties are
    broken at random. Rewards may be any finite numbers.
    """

    def __init__(self, arms: Sequence[str], *, epsilon: float = 0.1) -> None:
        super().__init__(arms)
        if not 0 <= epsilon <= 1:
            raise InvalidInput(f"epsilon must be between 0 and 1, got {epsilon}")
        self.epsilon = epsilon

    def _best(self) -> list[int]:
        pulls, rewards = self._aligned()
        means = [float(r) / p if p else math.inf for p, r in zip(pulls, rewards, strict=True)]
        top = max(means)
        return [k for k, m in enumerate(means) if m == top]

    def choose(self, rng: np.random.Generator) -> str:
        if rng.random() < self.epsilon:
            return self.arms[int(rng.integers(len(self.arms)))]
        best = self._best()
        return self.arms[best[0] if len(best) == 1 else best[int(rng.integers(len(best)))]]

    def choose_many(self, n: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
        best = np.asarray(self._best(), dtype=np.int64)
        greedy = best[rng.integers(best.size, size=n)]
        explore = rng.random(n) < self.epsilon
        return np.where(explore, rng.integers(len(self.arms), size=n), greedy).astype(np.int64)


class TrafficSplit:
    """A fixed split of traffic between versions, in percent summing to 100."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        self.arms = _check_arms(list(weights))
        for name, w in weights.items():
            number = isinstance(w, numbers.Real) and not isinstance(w, bool)
            if not number or not math.isfinite(w) or w < 0:
                raise InvalidInput(
                    f"traffic weight of version {name!r} must be a number from 0 to 100, got {w!r}",
                    details={"version": name},
                )
        total = math.fsum(weights.values())
        if abs(total - 100) > 1e-6:
            listed = ", ".join(f"{k}: {v:g}" for k, v in weights.items())
            raise InvalidInput(
                f"traffic weights must sum to 100, got {total:g} ({listed})",
                details={"total": total},
            )
        self.weights = np.asarray([float(weights[a]) for a in self.arms])
        self._cumulative = np.cumsum(self.weights)
        self._bounds = self._cumulative.tolist()

    @classmethod
    def canary(cls, stable: str, canary: str, percent: float) -> TrafficSplit:
        """``percent`` of traffic to ``canary``, the rest to ``stable``."""
        if not 0 <= percent <= 100:
            raise InvalidInput(f"canary percent must be from 0 to 100, got {percent:g}")
        if stable == canary:
            raise InvalidInput("a canary must be a different version from the stable one")
        return cls({stable: 100 - percent, canary: percent})

    def choose(self, rng: np.random.Generator) -> str:
        i = bisect.bisect_right(self._bounds, rng.random() * self._bounds[-1])
        return self.arms[min(i, len(self.arms) - 1)]

    def choose_many(self, n: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
        u = rng.random(n) * self._cumulative[-1]
        idx = np.searchsorted(self._cumulative, u, side="right")
        return np.asarray(np.minimum(idx, len(self.arms) - 1), dtype=np.int64)

    def to_dict(self) -> dict[str, float]:
        return {a: float(w) for a, w in zip(self.arms, self.weights, strict=True)}


def _check_arms(arms: Sequence[str]) -> list[str]:
    names = list(arms)
    if not names:
        raise InvalidInput("routing names no version")
    for a in names:
        if not isinstance(a, str) or not a:
            raise InvalidInput(f"version names must be non-empty strings, got {a!r}")
    if len(set(names)) != len(names):
        raise InvalidInput("routing names a version more than once")
    return names
