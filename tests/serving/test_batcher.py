"""Micro-batching gives every request exactly the answer it would get alone."""

from __future__ import annotations

import asyncio

import numpy as np

from openmaas.ml.flavors import Output
from openmaas.serving.batcher import Batcher


def test_concurrent_requests_share_one_call_and_get_their_own_rows() -> None:
    calls: list[int] = []

    def predict(version: int, X: np.ndarray) -> Output:
        calls.append(len(X))
        return Output(X.sum(axis=1) * version, np.c_[X[:, :1], X[:, :1]])

    async def main() -> list[Output]:
        batcher = Batcher(predict, max_rows=1000)
        parts = [np.full((n, 3), float(n)) for n in (1, 2, 3, 4)]
        return list(await asyncio.gather(*(batcher.submit(2, X) for X in parts)))

    outs = asyncio.run(main())
    assert calls == [10]
    for n, out in zip((1, 2, 3, 4), outs, strict=True):
        np.testing.assert_array_equal(out.predictions, np.full(n, 6.0 * n))
        assert out.probabilities is not None and out.probabilities.shape == (n, 2)


def test_a_bad_request_fails_alone_and_the_batch_is_capped() -> None:
    calls: list[int] = []

    def predict(version: int, X: np.ndarray) -> Output:
        calls.append(len(X))
        if np.isnan(X).any():
            raise ValueError("NaN")
        return Output(X[:, 0])

    async def main() -> list[object]:
        batcher = Batcher(predict, max_rows=4)
        parts = [np.ones((2, 1)), np.full((1, 1), np.nan), np.ones((3, 1)), np.ones((1, 1))]
        return list(
            await asyncio.gather(*(batcher.submit(1, X) for X in parts), return_exceptions=True)
        )

    outs = asyncio.run(main())
    assert isinstance(outs[1], ValueError)
    assert [len(o.predictions) for o in outs if isinstance(o, Output)] == [2, 3, 1]
    assert max(calls) <= 6  # a batch closes once it holds max_rows
