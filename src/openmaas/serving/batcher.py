"""Micro-batching: requests that arrive together share one model call.

A request parked with ``submit`` waits until the event loop has read every
request that is already readable (one ``call_soon``), or until the pending
rows reach ``max_rows``; then one ``predict`` runs on the stacked rows and each
request gets its slice. Under load, a call amortises the model's fixed cost
over many requests; alone, a request waits for nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from openmaas.ml.flavors import Output

Predict = Callable[[int, Any], Output]


class Batcher:
    def __init__(self, predict: Predict, *, max_rows: int = 4096) -> None:
        self.predict = predict
        self.max_rows = max_rows
        self._pending: dict[int, list[tuple[Any, asyncio.Future[Output]]]] = {}
        self._rows: dict[int, int] = {}

    def submit(self, version: int, X: Any) -> asyncio.Future[Output]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Output] = loop.create_future()
        queue = self._pending.get(version)
        if queue is None:
            queue = self._pending[version] = []
            self._rows[version] = 0
            loop.call_soon(self._run, version)
        queue.append((X, future))
        self._rows[version] += len(X)
        if self._rows[version] >= self.max_rows:
            self._run(version)
        return future

    def _run(self, version: int) -> None:
        queue = self._pending.pop(version, None)
        self._rows.pop(version, None)
        if not queue:
            return
        if len(queue) == 1:
            X, future = queue[0]
            self._settle([future], lambda: [self.predict(version, X)])
            return
        parts = [x for x, _ in queue]
        try:
            stacked = pd.concat(parts, ignore_index=True) if isinstance(parts[0], pd.DataFrame) \
                else np.concatenate(parts)  # fmt: skip
            out = self.predict(version, stacked)
        except Exception:  # one bad request must not fail the others: retry one by one
            for X, future in queue:
                self._settle([future], lambda X=X: [self.predict(version, X)])
            return
        predictions, probabilities = out.predictions, out.probabilities
        a = 0
        for x, future in queue:
            b = a + len(x)
            if not future.done():
                future.set_result(
                    Output(predictions[a:b], None if probabilities is None else probabilities[a:b])
                )
            a = b

    @staticmethod
    def _settle(futures: list[asyncio.Future[Output]], compute: Callable[[], list[Output]]) -> None:
        try:
            results = compute()
        except Exception as e:
            for f in futures:
                if not f.done():
                    f.set_exception(e)
            return
        for f, r in zip(futures, results, strict=True):
            if not f.done():
                f.set_result(r)
