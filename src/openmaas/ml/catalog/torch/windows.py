"""Sliding windows over long-format series: the inputs and targets of sequence models.

Numpy only (no torch), so the engine can window a sequence task without
importing torch. Rows are taken in the order given: sort by (series, time)
first. A window never crosses from one series into the next.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from openmaas.errors import InvalidInput

__all__ = ["sliding_windows"]


def sliding_windows(
    values: npt.ArrayLike,
    context_length: int,
    horizon: int,
    series: npt.ArrayLike | None = None,
    target: int = 0,
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[np.int64]]:
    """Every (context, future) window of each series.

    ``values`` is ``(n,)`` (one variable) or ``(n, features)``; ``series`` names
    the series of each row (rows of a series contiguous and in time order;
    None = one series). Returns

    - ``X``: ``(windows, context_length)`` or ``(windows, context_length, features)``;
    - ``y``: ``(windows, horizon)``, the next ``horizon`` values of column ``target``;
    - ``start``: ``(windows,)``, the row of each window's first future value.

    Built with ``sliding_window_view`` (views, no Python loop over windows).
    """
    data = np.asarray(values)
    if data.ndim not in (1, 2):
        raise InvalidInput(f"values must be 1-D or 2-D, got shape {data.shape}")
    if context_length < 1 or horizon < 1:
        raise InvalidInput("context_length and horizon must be >= 1")
    length = context_length + horizon
    n = len(data)
    if n < length:
        empty_x = np.empty((0, context_length, *data.shape[1:]), dtype=data.dtype)
        return empty_x, np.empty((0, horizon), dtype=data.dtype), np.empty(0, dtype=np.int64)
    windows = sliding_window_view(data, length, axis=0)  # (n - length + 1, [features,] length)
    if data.ndim == 2:
        windows = windows.transpose(0, 2, 1)  # (windows, length, features)
    first = np.arange(n - length + 1)
    if series is not None:
        ids = np.asarray(series)
        if len(ids) != n:
            raise InvalidInput(f"series has {len(ids)} rows but values have {n}")
        boundary = np.concatenate([[0], np.cumsum(ids[1:] != ids[:-1])])  # run number per row
        first = first[boundary[first] == boundary[first + length - 1]]
    chosen = windows[first]
    X = chosen[:, :context_length]
    y = chosen[:, context_length:] if data.ndim == 1 else chosen[:, context_length:, target]
    return np.ascontiguousarray(X), np.ascontiguousarray(y), first + context_length
