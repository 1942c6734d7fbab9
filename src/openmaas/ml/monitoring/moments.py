"""Count, mean, variance, min and max of a stream, mergeable in any order.

Batches and other replicas' states are combined with Chan et al.'s formula,
so the variance is as accurate as a two-pass one whatever the merge order
(a running sum of squares loses it for values far from zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass
class Moments:
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    min: float | None = None
    max: float | None = None

    def add(self, values: npt.NDArray[np.float64]) -> None:
        """Add the finite values of a batch."""
        v = values[np.isfinite(values)]
        if v.size:
            mean = float(v.mean())
            m2 = float(np.square(v - mean).sum())
            self.merge(Moments(int(v.size), mean, m2, float(v.min()), float(v.max())))

    def merge(self, other: Moments) -> None:
        if not other.count:
            return
        n = self.count + other.count
        delta = other.mean - self.mean
        self.m2 += other.m2 + delta * delta * self.count * other.count / n
        self.mean += delta * other.count / n
        self.count = n
        self.min = other.min if self.min is None or other.min is None else min(self.min, other.min)
        self.max = other.max if self.max is None or other.max is None else max(self.max, other.max)

    @property
    def variance(self) -> float | None:
        """The sample variance (ddof=1), None below two values."""
        return self.m2 / (self.count - 1) if self.count > 1 else None

    def to_list(self) -> list[Any]:
        return [self.count, self.mean, self.m2, self.min, self.max]

    @classmethod
    def from_list(cls, d: list[Any]) -> Moments:
        return cls(int(d[0]), float(d[1]), float(d[2]), d[3], d[4])
