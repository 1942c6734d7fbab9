"""Turning validated arrays into the tensors the torch models train on.

Tabular models take numeric columns as floats and categorical columns as
integer codes, as the ``ordinal`` preprocessing writes them: a column with
``cardinality`` k holds codes ``0..k-1``, 0 meaning missing or unseen. Codes
outside that range (and NaN) are read as 0, so a model never fails on a
category it has not seen. Sparse inputs stay sparse: :class:`SparseRows` hands
out batches as sparse torch tensors.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import torch

from openmaas.errors import InvalidInput

__all__ = [
    "SparseRows",
    "check_categorical",
    "data_digest",
    "decode_labels",
    "encode_labels",
    "float_tensor",
    "materialise",
    "split_categorical",
    "take",
]


class SparseRows:
    """A CSR matrix indexed by rows: ``rows[index]`` is a sparse COO float tensor."""

    def __init__(self, matrix: sp.csr_array | sp.csr_matrix) -> None:
        self.matrix = sp.csr_array(matrix, dtype=np.float32)
        self.matrix.sum_duplicates()  # sorted, unique: its COO form is coalesced
        self.shape = self.matrix.shape

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def __getitem__(self, index: torch.Tensor | slice) -> torch.Tensor:
        rows = self.matrix[index] if isinstance(index, slice) else self.matrix[index.numpy()]
        coo = sp.coo_array(rows)
        indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        return torch.sparse_coo_tensor(
            indices,
            torch.from_numpy(coo.data),
            size=coo.shape,
            is_coalesced=True,
            check_invariants=False,
        )

    def take(self, index: torch.Tensor) -> SparseRows:
        return SparseRows(self.matrix[index.numpy()])


def take(column: Any, index: torch.Tensor) -> Any:
    """Rows ``index`` of a training column, of the same kind (tensor or :class:`SparseRows`)."""
    return column.take(index) if isinstance(column, SparseRows) else column[index]


def materialise(column: Any) -> Any:
    """A whole column as a tensor (sparse for :class:`SparseRows`)."""
    return column[:] if isinstance(column, SparseRows) else column


def float_tensor(X: Any) -> torch.Tensor | SparseRows:
    """A float32 tensor (or :class:`SparseRows`) of validated ``X``."""
    if sp.issparse(X):
        return SparseRows(X)
    return torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))


def split_categorical(
    X: npt.NDArray[Any], categorical: Sequence[int], cardinalities: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Numeric columns (float32) and categorical codes (int64, out-of-range -> 0)."""
    numeric = np.delete(X, list(categorical), axis=1)
    if not np.isfinite(numeric).all():
        raise ValueError("Input X contains NaN or infinity in a numeric column.")
    codes = np.asarray(X[:, list(categorical)], dtype=np.float64).reshape(len(X), -1)
    card = np.asarray(cardinalities, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        known = np.isfinite(codes) & (codes >= 0) & (codes < card)
    rows = np.where(known, np.nan_to_num(np.rint(codes)), 0).astype(np.int64)
    return (
        torch.from_numpy(np.ascontiguousarray(numeric, dtype=np.float32)),
        torch.from_numpy(rows),
    )


def check_categorical(
    n_features: int,
    categorical: Sequence[int] | None,
    cardinalities: Sequence[int] | None,
    X: npt.NDArray[Any],
) -> tuple[list[int], list[int]]:
    """Validate ``categorical_features``/``cardinalities``; infer missing cardinalities."""
    cats = sorted({int(c) for c in categorical or []})
    for c in cats:
        if not 0 <= c < n_features:
            raise InvalidInput(
                f"categorical feature index {c} is out of range for {n_features} features",
                details={"feature": c, "n_features": n_features},
            )
    if cardinalities is None:  # the largest code seen, plus one
        codes = np.nan_to_num(X[:, cats].astype(np.float64), nan=0.0, posinf=0.0)
        return cats, [int(top) + 1 for top in codes.max(axis=0, initial=0)]
    cards = [int(c) for c in cardinalities]
    if len(cards) != len(cats):
        raise InvalidInput(
            f"got {len(cards)} cardinalities for {len(cats)} categorical features",
            details={"cardinalities": len(cards), "categorical_features": len(cats)},
        )
    if any(c < 1 for c in cards):
        raise InvalidInput("cardinalities must be >= 1", details={"cardinalities": cards})
    return cats, cards


def encode_labels(labels: npt.NDArray[Any]) -> dict[str, Any]:
    """Class labels as JSON: values and dtype, so they load back as the same array."""
    values = [v.item() if isinstance(v, np.generic) else v for v in labels.tolist()]
    return {"dtype": labels.dtype.str, "values": values}


def decode_labels(data: dict[str, Any]) -> npt.NDArray[Any]:
    dtype = np.dtype(data["dtype"])
    if dtype.kind == "O":
        out = np.empty(len(data["values"]), dtype=object)
        out[:] = data["values"]
        return out
    return np.asarray(data["values"], dtype=dtype)


def data_digest(params: dict[str, Any], columns: Sequence[Any]) -> str:
    """A fingerprint of hyperparameters and training data (ties a checkpoint to its run)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    for column in columns:
        if isinstance(column, SparseRows):
            parts = [column.matrix.data, column.matrix.indices, column.matrix.indptr]
        else:
            parts = [column.numpy()]
        for part in parts:
            array = np.ascontiguousarray(part)
            h.update(str(array.shape).encode() + array.dtype.str.encode())
            h.update(array.reshape(-1).view(np.uint8).data)
    return h.hexdigest()
