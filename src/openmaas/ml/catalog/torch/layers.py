"""Building blocks shared by the torch models: MLP stacks and tabular inputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "TabularInput", "embedding_size", "mlp"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def mlp(
    in_dim: int,
    depth: int,
    width: int,
    activation: str,
    dropout: float = 0.0,
    batch_norm: bool = False,
) -> nn.Sequential:
    """``depth`` blocks of Linear -> [BatchNorm] -> activation -> [Dropout]; out dim ``width``.

    With ``depth`` 0 it is the identity (out dim ``in_dim``).
    """
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(depth):
        layers.append(nn.Linear(dim, width))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        dim = width
    return nn.Sequential(*layers)


def embedding_size(cardinality: int, cap: int | None) -> int:
    """Embedding width of a column: ``cap`` if given, else fast.ai's rule of thumb."""
    if cap is not None:
        return cap
    size: float = 1.6 * float(max(cardinality, 1)) ** 0.56
    return max(1, min(50, round(size)))


class TabularInput(nn.Module):
    """Numeric columns as given, then one embedding per categorical column, concatenated.

    ``forward(numeric, codes)`` takes floats ``(n, n_numeric)`` and embedding
    codes ``(n, n_categorical)`` (0 = missing or unseen, see :mod:`.inputs`).
    """

    def __init__(self, n_numeric: int, cardinalities: Sequence[int], dims: Sequence[int]) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(
            nn.Embedding(card, dim) for card, dim in zip(cardinalities, dims, strict=True)
        )
        self.out_dim = n_numeric + sum(dims)

    def forward(self, numeric: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        parts = [numeric, *(emb(codes[:, j]) for j, emb in enumerate(self.embeddings))]
        return torch.cat(parts, dim=1) if len(parts) > 1 else numeric
