"""What a run ran on: package versions, data and split digests, seed, threads, memory."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import sys
from typing import Any

import numpy as np
import pandas as pd

from openmaas.ml.splits import Splits

__all__ = ["data_digest", "environment", "peak_rss_mb", "splits_digest"]

PACKAGES = ("numpy", "pandas", "pyarrow", "scikit-learn", "lightgbm", "skops")
"""Distributions whose versions every run records (torch too once imported)."""


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(
    seed: int, threads: int, data: str | None, splits: str, dataset_version: str | None
) -> dict[str, Any]:
    packages = {name: _version(name) for name in PACKAGES}
    torch = sys.modules.get("torch")
    if torch is not None:
        packages["torch"] = str(torch.__version__)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "openmaas": _version("openmaas"),
        "packages": packages,
        "seed": seed,
        "threads": threads,
        "dataset_version": dataset_version,
        "data_digest": data,
        "splits_digest": splits,
    }


def data_digest(frame: pd.DataFrame) -> str | None:
    """SHA-256 of the column names and pandas' per-row value hashes (the dataset content);
    None if some value cannot be hashed (nested values)."""
    digest = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    try:
        rows = pd.util.hash_pandas_object(frame, index=False)
    except TypeError:
        return None
    digest.update(rows.to_numpy().tobytes())
    return digest.hexdigest()


def splits_digest(splits: Splits) -> str:
    digest = hashlib.sha256(f"{splits.n_inner}:{splits.time_ordered}".encode())
    for folds in (splits.outer, *splits.inner):
        digest.update(np.ascontiguousarray(folds, dtype="<i2").tobytes())
    return digest.hexdigest()


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process so far, in MiB (None where unknown)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024
