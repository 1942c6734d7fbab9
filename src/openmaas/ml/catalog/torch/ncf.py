"""Neural collaborative filtering (He et al., 2017) for recommendation tasks.

Input ``X`` has two columns, user id and item id (any hashable values); ``y``
is the rating (explicit feedback, ``loss="mse"``) or optional interaction
strength (implicit feedback: rows with ``y <= 0`` are not interactions). Towers:

- ``gmf``: ``<p_u, q_i>`` (with ``loss="bpr"`` this is BPR-MF);
- ``mlp``: an MLP over ``[p_u, q_i]`` (separate embeddings);
- ``neumf``: a linear layer over the GMF product and the MLP output.

Every tower adds a global, a user and an item bias. Implicit losses sample
``n_negatives`` items per interaction uniformly, re-drawing those the user
interacted with (vectorised): ``bce`` (pointwise logistic) or ``bpr``
(pairwise, ``-log sigmoid(s_ui - s_uj)``).

``embedding_l2`` regularises as BPR (Rendle et al., 2009) does: per
interaction, ``embedding_l2 * (|p_u|^2 + |q_i|^2 + mean_j |q_j|^2)`` over the
embedding rows the batch uses (``j`` its sampled negatives), averaged over the
batch. ``weight_decay`` instead shrinks every row at every step; with Adam a
row outside the batch then gets a full-size step towards zero from its decay
alone, so rare users and items are flattened. Biases are not penalised.

Prediction: ``predict(X)`` scores (user, item) pairs; ``score_matrix(users)``
gives the full ``(users, items_)`` score matrix and ``recommend(users, k,
exclude=pairs)`` each user's top ``k`` items, both through batched matrix
products over all items. Unknown users or items get the zero embedding, so
their scores come from the biases (popularity for unknown users).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any, Self, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn
from torch.nn import functional as F

from openmaas.errors import InvalidInput
from openmaas.ml.catalog.base import HyperParameter, TrainingCallbacks
from openmaas.ml.catalog.registry import register
from openmaas.ml.catalog.torch.estimator import TorchAlgorithm, reject_unknown
from openmaas.ml.catalog.torch.hyperparameters import training_hyperparameters
from openmaas.ml.catalog.torch.inputs import decode_labels, encode_labels
from openmaas.ml.catalog.torch.layers import ACTIVATIONS, mlp
from openmaas.ml.catalog.torch.trainer import torch_session

__all__ = ["NCF", "NCFNet"]

SCORE_BUDGET = 4_000_000
"""Floats of intermediate activations per batch when scoring all items."""


class NCFNet(nn.Module):
    """GMF, MLP or NeuMF; users and items are rows 1..n (row 0: unknown, always zero)."""

    def __init__(
        self, n_users: int, n_items: int, tower: str, n_factors: int, depth: int, width: int,
        activation: str, dropout: float,
    ) -> None:  # fmt: skip
        super().__init__()
        self.tower = tower
        self.bias = nn.Parameter(torch.zeros(1))
        self.user_bias = nn.Embedding(n_users + 1, 1, padding_idx=0)
        self.item_bias = nn.Embedding(n_items + 1, 1, padding_idx=0)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        out_dim = 0
        if tower in ("gmf", "neumf"):
            self.gmf_user = _embedding(n_users, n_factors)
            self.gmf_item = _embedding(n_items, n_factors)
            out_dim += n_factors
        if tower in ("mlp", "neumf"):
            self.mlp_user = _embedding(n_users, n_factors)
            self.mlp_item = _embedding(n_items, n_factors)
            self.mlp = mlp(2 * n_factors, depth, width, activation, dropout)
            out_dim += width
        if tower != "gmf":
            self.out = nn.Linear(out_dim, 1, bias=False)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of (user, item) pairs, ``(n,)``."""
        out: torch.Tensor = self.bias + self.user_bias(users)[:, 0] + self.item_bias(items)[:, 0]
        if self.tower == "gmf":
            dot: torch.Tensor = (self.gmf_user(users) * self.gmf_item(items)).sum(dim=1)
            return out + dot
        parts = []
        if self.tower == "neumf":
            parts.append(self.gmf_user(users) * self.gmf_item(items))
        hidden = torch.cat([self.mlp_user(users), self.mlp_item(items)], dim=1)
        parts.append(self.mlp(hidden))
        top: torch.Tensor = self.out(torch.cat(parts, dim=1))
        return out + top[:, 0]

    def squared_norms(self, ids: torch.Tensor, side: str) -> torch.Tensor:
        """Squared norm of every embedding row of ``ids`` (``side`` user or item), ``ids.shape``.

        GMF and MLP embeddings together (NeuMF has both); biases are not included.
        """
        tables = [getattr(self, f"{tower}_{side}", None) for tower in ("gmf", "mlp")]
        out = torch.zeros(ids.shape)
        for table in tables:
            if table is not None:
                out = out + table(ids).pow(2).sum(dim=-1)
        return out

    def score_all(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of every user against every item, ``(len(users), len(items))``.

        Matrix products only: the GMF term is ``(P * w) @ Q.T``; the MLP's first
        layer splits into a user part and an item part, broadcast-added.
        """
        out: torch.Tensor = self.bias + self.user_bias(users) + self.item_bias(items)[:, 0]
        k = self.gmf_user.embedding_dim if self.tower != "mlp" else 0
        if self.tower == "gmf":
            products: torch.Tensor = self.gmf_user(users) @ self.gmf_item(items).T
            return out + products
        if self.tower == "neumf":
            w = self.out.weight[0, :k]
            out = out + (self.gmf_user(users) * w) @ self.gmf_item(items).T
        first = self.mlp[0]
        assert isinstance(first, nn.Linear)
        half = self.mlp_user.embedding_dim
        a = self.mlp_user(users) @ first.weight[:, :half].T + first.bias  # (b, h)
        c = self.mlp_item(items) @ first.weight[:, half:].T  # (m, h)
        hidden: torch.Tensor = self.mlp[1:](a[:, None, :] + c[None, :, :])  # (b, m, width)
        return out + hidden @ self.out.weight[0, k:]


def _embedding(n: int, dim: int) -> nn.Embedding:
    emb = nn.Embedding(n + 1, dim, padding_idx=0)
    nn.init.normal_(emb.weight, std=0.1)
    with torch.no_grad():
        emb.weight[0].zero_()
    return emb


@register
class NCF(TorchAlgorithm):
    name = "ncf"
    description = (
        "Neural collaborative filtering (PyTorch): GMF (BPR-MF with the bpr loss), MLP or "
        "NeuMF towers; implicit feedback with negative sampling or explicit ratings."
    )
    task_types = frozenset({"recommendation"})
    preprocessing = "none"

    def __init__(
        self,
        task_type: str = "recommendation",
        model: str = "neumf",
        loss: str = "bce",
        n_factors: int = 32,
        depth: int = 2,
        width: int = 64,
        activation: str = "relu",
        dropout: float = 0.0,
        n_negatives: int = 4,
        embedding_l2: float = 0.0,
        epochs: int = 20,
        batch_size: int = 1024,
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        lr_schedule: str = "constant",
        lr_decay: float = 0.1,
        lr_decay_epochs: int = 10,
        patience: int = 5,
        validation_fraction: float = 0.1,
        max_gradient_norm: float | None = 1e4,
        clip_gradient_norm: float | None = None,
        random_state: int = 0,
        n_threads: int = 1,
    ) -> None:
        self.task_type = task_type
        self.model = model
        self.loss = loss
        self.n_factors = n_factors
        self.depth = depth
        self.width = width
        self.activation = activation
        self.dropout = dropout
        self.n_negatives = n_negatives
        self.embedding_l2 = embedding_l2
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.lr_decay = lr_decay
        self.lr_decay_epochs = lr_decay_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.max_gradient_norm = max_gradient_norm
        self.clip_gradient_norm = clip_gradient_norm
        self.random_state = random_state
        self.n_threads = n_threads

    @classmethod
    def hyperparameters(cls) -> list[HyperParameter]:
        hp = HyperParameter
        return [
            hp(
                "model",
                "str",
                "neumf",
                "Tower: gmf (matrix factorisation), mlp or neumf (both).",
                choices=("gmf", "mlp", "neumf"),
            ),
            hp(
                "loss",
                "str",
                "bce",
                "bce (implicit, pointwise), bpr (implicit, pairwise) or mse (explicit ratings).",
                choices=("bce", "bpr", "mse"),
                tunable=False,
            ),
            hp(
                "n_factors",
                "int",
                32,
                "Embedding size of users and items.",
                low=2,
                high=512,
                log=True,
            ),
            hp("depth", "int", 2, "Hidden layers of the MLP tower.", low=1, high=6),
            hp(
                "width",
                "int",
                64,
                "Units per hidden layer of the MLP tower.",
                low=4,
                high=1024,
                log=True,
            ),
            hp(
                "activation",
                "str",
                "relu",
                "Activation of the MLP tower.",
                choices=tuple(ACTIVATIONS),
            ),
            hp("dropout", "float", 0.0, "Dropout rate in the MLP tower.", low=0.0, high=0.9),
            hp(
                "n_negatives",
                "int",
                4,
                "Items sampled per interaction (implicit losses).",
                low=1,
                high=100,
            ),
            hp(
                "embedding_l2",
                "float",
                0.0,
                "L2 penalty on the embedding rows each batch uses (BPR's regularisation; "
                "see the module): per interaction, times the squared norms of its user's, "
                "its item's and the mean of its negatives' embeddings. Unlike weight_decay "
                "it leaves the rows of users and items outside the batch alone.",
                low=0.0,
                high=10.0,
            ),
            *training_hyperparameters(epochs=20, batch_size=1024, patience=5),
        ]

    @classmethod
    def search_space(cls) -> list[HyperParameter]:
        """``embedding_l2`` on a log scale; useful values on MovieLens are around 1e-2."""
        return [
            dataclasses.replace(h, low=1e-4, high=1e-1, log=True) if h.name == "embedding_l2"
            else h
            for h in super().search_space()
        ]  # fmt: skip

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        X_valid: Any = None,
        y_valid: Any = None,
        callbacks: TrainingCallbacks | None = None,
        init_model: NCF | None = None,
        init_from: Any = None,
        **fit_params: Any,
    ) -> Self:
        """Fit on (user, item) rows ``X`` and ratings or strengths ``y`` (see the module)."""
        reject_unknown(fit_params)
        self._positives: torch.Tensor | None = None  # set from the training rows
        self._fit(
            X,
            y,
            X_valid=X_valid,
            y_valid=y_valid,
            callbacks=callbacks,
            init_model=init_model,
            init_from=init_from,
        )
        del self._positives
        return self

    # -- data ----------------------------------------------------------------------------

    def _prepare(self, X: Any, y: Any, reset: bool, **fit_params: Any) -> list[Any]:
        users, items = _pairs(X)
        keep = ~(pd.isna(users) | pd.isna(items))
        if reset and not keep.all():
            raise InvalidInput(f"{int((~keep).sum())} interactions lack a user or an item id")
        rating = None
        if y is not None:
            rating = np.asarray(y, dtype=np.float64).reshape(-1)
            if len(rating) != len(users):
                raise InvalidInput(f"X has {len(users)} rows but y has {len(rating)}")
            if self.loss == "mse":
                keep &= np.isfinite(rating)
            else:
                keep &= np.nan_to_num(rating, nan=0.0) > 0  # not an interaction
        elif self.loss == "mse":
            raise InvalidInput("loss 'mse' needs ratings y (explicit feedback)")
        users, items = users[keep], items[keep]
        if reset:
            if len(users) == 0:
                raise InvalidInput("there are no interactions to train on")
            self.users_, self.items_ = _vocabulary(users), _vocabulary(items)
            self.n_features_in_ = 2
        u = torch.from_numpy(_index(self.users_, users))
        i = torch.from_numpy(_index(self.items_, items))
        if self._positives is None:  # the first rows a fit prepares are its training rows
            self._positives = torch.unique(u * (len(self.items_) + 1) + i)
        if self.loss != "mse":
            return [u, i]
        assert rating is not None
        values = rating[keep]
        if reset:
            self.y_mean_, self.y_scale_ = float(values.mean()), float(values.std()) or 1.0
        return [
            u,
            i,
            torch.from_numpy(((values - self.y_mean_) / self.y_scale_).astype(np.float32)),
        ]

    def _build_module(self) -> nn.Module:
        return NCFNet(
            len(self.users_),
            len(self.items_),
            self.model,
            self.n_factors,
            self.depth,
            self.width,
            self.activation,
            self.dropout,
        )

    # -- training ------------------------------------------------------------------------

    def _negatives(self, users: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``n_negatives`` items per user, uniform over items the user did not interact with."""
        n_items = len(self.items_)
        shape = (len(users), self.n_negatives)
        items = torch.randint(1, n_items + 1, shape, generator=generator)
        positives = self._positives
        assert positives is not None
        for _ in range(5):  # re-draw hits of known interactions; rare unless a user saw most
            codes = users[:, None] * (n_items + 1) + items
            at = torch.searchsorted(positives, codes).clamp(max=len(positives) - 1)
            hit = positives[at] == codes
            if not bool(hit.any()):
                break
            items = torch.where(
                hit, torch.randint(1, n_items + 1, shape, generator=generator), items
            )
        return items

    def _pair_scores(
        self, module: nn.Module, batch: Sequence[Any], generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scores of the batch's interactions ``(n,)``, of their negatives ``(n,
        n_negatives)``, and those negatives."""
        users, items = batch[0], batch[1]
        negatives = self._negatives(users, generator)
        pos = module(users, items)
        neg = module(users.repeat_interleave(self.n_negatives), negatives.reshape(-1))
        return pos, neg.reshape(len(users), self.n_negatives), negatives

    def _batch_loss(
        self, module: nn.Module, batch: Sequence[Any], generator: torch.Generator
    ) -> torch.Tensor:
        """The data loss plus the ``embedding_l2`` penalty: what training minimises."""
        loss, negatives = self._data_loss(module, batch, generator)
        if self.embedding_l2 <= 0:
            return loss
        net = cast(NCFNet, module)
        norms = net.squared_norms(batch[0], "user") + net.squared_norms(batch[1], "item")
        if negatives is not None:
            norms = norms + net.squared_norms(negatives, "item").mean(dim=1)
        return loss + self.embedding_l2 * norms.mean()

    def _data_loss(
        self, module: nn.Module, batch: Sequence[Any], generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The loss without penalty and the negatives it sampled (None for ``mse``)."""
        if self.loss == "mse":
            return F.mse_loss(module(batch[0], batch[1]), batch[2]), None
        pos, neg, negatives = self._pair_scores(module, batch, generator)
        if self.loss == "bpr":
            return -F.logsigmoid(pos[:, None] - neg).mean(), negatives
        logits = torch.cat([pos, neg.reshape(-1)])
        labels = torch.cat([torch.ones_like(pos), torch.zeros(neg.numel())])
        return F.binary_cross_entropy_with_logits(logits, labels), negatives

    def _evaluate(
        self, module: nn.Module, data: Sequence[Any], generator: torch.Generator
    ) -> dict[str, float]:
        """Losses without the penalty, so they compare across ``embedding_l2`` values."""
        if self.loss == "mse":
            loss = float(self._data_loss(module, data, generator)[0])
            return {"loss": loss, "rmse": loss**0.5 * self.y_scale_}
        out = {"loss": float(self._data_loss(module, data, generator)[0])}
        pos, neg, _ = self._pair_scores(module, data, generator)
        out["pairwise_accuracy"] = float((pos[:, None] > neg).float().mean())
        return out

    # -- prediction ----------------------------------------------------------------------

    def predict(self, X: Any) -> npt.NDArray[np.float64]:
        """Scores of (user, item) rows: ratings for ``mse``, else logits (higher = better)."""
        check_is_fitted(self)
        users, items = _pairs(X)
        u = torch.from_numpy(_index(self.users_, users))
        i = torch.from_numpy(_index(self.items_, items))
        out = self._infer(lambda b: self.module_(*b), [u, i]).double().numpy()
        return out * self.y_scale_ + self.y_mean_ if self.loss == "mse" else out

    def score_matrix(self, users: Any = None) -> npt.NDArray[np.float64]:
        """Scores of ``users`` (default: every training user, ``users_``) x ``items_``."""
        check_is_fitted(self)
        u = self._user_rows(users)
        items = torch.arange(1, len(self.items_) + 1)
        chunks = list(self._score_chunks(u, items))
        out = torch.cat(chunks).double().numpy() if chunks else np.empty((0, len(items)))
        return out * self.y_scale_ + self.y_mean_ if self.loss == "mse" else out

    def recommend(
        self, users: Any, k: int = 10, exclude: Any = None
    ) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64]]:
        """Each user's ``k`` best items and their scores, best first, ``(len(users), k)``.

        ``exclude``: (user, item) pairs never to recommend, e.g. the training
        interactions (array-like or DataFrame with two columns).
        """
        check_is_fitted(self)
        raw = np.asarray(users)
        u = self._user_rows(raw)
        k = min(int(k), len(self.items_))
        banned = _exclusions(raw, exclude, self.items_) if exclude is not None else None
        items = torch.arange(1, len(self.items_) + 1)
        tops, values = [], []
        for scores in self._score_chunks(u, items, banned):
            best = torch.topk(scores, k, dim=1)
            tops.append(best.indices)
            values.append(best.values)
        index = torch.cat(tops).numpy() if tops else np.empty((0, k), dtype=np.int64)
        score = torch.cat(values).double().numpy() if values else np.empty((0, k))
        if self.loss == "mse":
            score = score * self.y_scale_ + self.y_mean_
        return self.items_[index], score

    def _user_rows(self, users: Any) -> torch.Tensor:
        if users is None:
            return torch.arange(1, len(self.users_) + 1)
        return torch.from_numpy(_index(self.users_, np.asarray(users).reshape(-1)))

    def _score_chunks(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        banned: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> Iterator[torch.Tensor]:
        """Score matrices of consecutive user blocks; ``banned`` (row, column) pairs -> -inf."""
        per_user = len(items) * (1 if self.model == "gmf" else self.width + 1)
        step = max(1, SCORE_BUDGET // max(per_user, 1))
        self.module_.eval()
        for start in range(0, len(users), step):
            with torch_session(None, self.n_threads), torch.inference_mode():
                scores = cast(NCFNet, self.module_).score_all(users[start : start + step], items)
                if banned is not None:
                    rows, cols = banned
                    sel = (rows >= start) & (rows < start + len(scores))
                    scores[rows[sel] - start, cols[sel]] = -torch.inf
            yield scores

    # -- files ---------------------------------------------------------------------------

    def _fitted_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "users": encode_labels(self.users_),
            "items": encode_labels(self.items_),
        }
        if self.loss == "mse":
            out.update(y_mean=self.y_mean_, y_scale=self.y_scale_)
        return out

    def _restore_fitted(self, config: dict[str, Any]) -> None:
        self.users_ = decode_labels(config["users"])
        self.items_ = decode_labels(config["items"])
        if self.loss == "mse":
            self.y_mean_, self.y_scale_ = float(config["y_mean"]), float(config["y_scale"])


def _pairs(X: Any) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    if hasattr(X, "iloc"):
        if X.shape[1] != 2:
            raise InvalidInput(f"NCF takes two columns (user, item); got {X.shape[1]}")
        return X.iloc[:, 0].to_numpy(), X.iloc[:, 1].to_numpy()
    array = np.asarray(X)
    if array.ndim != 2 or array.shape[1] != 2:
        raise InvalidInput(f"NCF takes two columns (user, item); got shape {array.shape}")
    return array[:, 0], array[:, 1]


def _vocabulary(ids: npt.NDArray[Any]) -> npt.NDArray[Any]:
    try:
        return np.unique(ids)
    except TypeError:  # mixed types: compare as strings
        return np.unique(ids.astype(str))


def _index(vocabulary: npt.NDArray[Any], ids: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """Rows 1..n of known ids in ``vocabulary`` (sorted), 0 for unknown ones."""
    if vocabulary.dtype.kind in "US" or (vocabulary.dtype.kind == "O" and ids.dtype.kind != "O"):
        ids = ids.astype(vocabulary.dtype)
    try:
        at = np.searchsorted(vocabulary, ids)
    except TypeError:
        ids = ids.astype(str)
        at = np.searchsorted(vocabulary, ids)
    at = np.minimum(at, len(vocabulary) - 1)
    known = vocabulary[at] == ids
    return np.where(known, at + 1, 0).astype(np.int64)


def _exclusions(
    users: npt.NDArray[Any], exclude: Any, items: npt.NDArray[Any]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(row in ``users``, column in ``items``) of every excluded pair, duplicates expanded."""
    ex_users, ex_items = _pairs(exclude)
    cols = _index(items, ex_items) - 1
    order = np.argsort(users, kind="stable")
    ranked = users[order]
    lo = np.searchsorted(ranked, ex_users, side="left")
    hi = np.searchsorted(ranked, ex_users, side="right")
    counts = np.where(cols >= 0, hi - lo, 0)
    starts = np.repeat(lo, counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = order[starts + offsets]
    return torch.from_numpy(rows), torch.from_numpy(np.repeat(cols, counts))
