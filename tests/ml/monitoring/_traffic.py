"""Synthetic traffic for monitoring tests: ten features of different shapes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from openmaas.ml.data.profile import Profiler

FEATURES = [f"f{i}" for i in range(10)]
PROFILE_SEED = 20_261_206


def traffic(rng: np.random.Generator, n: int) -> np.ndarray:
    """Normal, skewed, heavy-tailed, bimodal, discrete and binary features."""
    bimodal = np.where(rng.random(n) < 0.5, rng.normal(-2, 0.5, n), rng.normal(2, 0.5, n))
    return np.column_stack(
        [
            rng.normal(0, 1, n),
            rng.lognormal(0, 1, n),
            rng.poisson(3, n).astype(float),
            rng.uniform(0, 1, n),
            bimodal,
            rng.exponential(2, n),
            rng.integers(0, 2, n).astype(float),
            rng.standard_t(3, n),
            rng.normal(100, 15, n),
            rng.gamma(0.5, 1, n),
        ]
    )


def profile_of(x: np.ndarray, *, sample_rows: int = 10_000) -> dict:
    """The dataset profile the platform would store for this training matrix.

    The profile's seed must differ from the data's: the reservoir keys rows by
    the seed's first uniforms, which with equal seeds are the very draws that
    chose the bimodal feature's mode, and the sample would hold one mode only.
    """
    table = pa.table({name: x[:, j] for j, name in enumerate(FEATURES)})
    profiler = Profiler(table.schema, sample_rows=sample_rows, seed=PROFILE_SEED)
    for batch in table.to_batches(max_chunksize=4096):
        profiler.add(pa.Table.from_batches([batch]))
    return profiler.result(profiler.kinds())
