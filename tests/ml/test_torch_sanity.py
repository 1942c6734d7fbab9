"""Acceptance: each torch model beats the baseline it exists to beat, on generated data.

Every dataset is generated with a fixed seed so that the structure the model
should find is there by construction and the margin is wide; the models run
with small settings (seconds on two cores).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from openmaas.ml.catalog.torch.dnn import DNN
from openmaas.ml.catalog.torch.fm import FactorizationMachine
from openmaas.ml.catalog.torch.ncf import NCF
from openmaas.ml.catalog.torch.rnn import RNN
from openmaas.ml.catalog.torch.vae import VAE
from openmaas.ml.catalog.torch.windows import sliding_windows
from openmaas.ml.metrics import ndcg_at_k


def test_fm_beats_logistic_regression_on_pure_pairwise_interactions() -> None:
    rng = np.random.RandomState(0)
    X = rng.normal(size=(4000, 10))
    logit = 2.0 * (X[:, 0] * X[:, 1] - X[:, 2] * X[:, 3])  # no main effects at all
    y = (rng.uniform(size=len(X)) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    train, test = slice(0, 3000), slice(3000, None)
    fm = FactorizationMachine(n_factors=4, epochs=20, batch_size=128, patience=0)
    fm_auc = roc_auc_score(y[test], fm.fit(X[train], y[train]).predict_proba(X[test])[:, 1])
    linear = LogisticRegression().fit(X[train], y[train])
    linear_auc = roc_auc_score(y[test], linear.predict_proba(X[test])[:, 1])
    assert linear_auc < 0.6 < 0.8 < fm_auc


def test_rnn_beats_the_last_value_forecast_on_an_ar2_series() -> None:
    rng = np.random.RandomState(0)
    n_series, length = 20, 150
    values = np.zeros((n_series, length))
    for t in range(2, length):  # y_t = 1.3 y_{t-1} - 0.6 y_{t-2} + noise: oscillating
        values[:, t] = 1.3 * values[:, t - 1] - 0.6 * values[:, t - 2] + rng.normal(size=n_series)
    series = np.repeat(np.arange(n_series), length)
    X, y, start = sliding_windows(values.ravel(), context_length=10, horizon=3, series=series)
    train = start % length < 110  # the last 40 steps of every series are the test part
    for cell in ("rnn", "gru", "lstm"):
        model = RNN(cell=cell, hidden_size=16, epochs=15, patience=0).fit(X[train], y[train])
        rmse = np.sqrt(np.mean((model.predict(X[~train]) - y[~train]) ** 2))
        naive = np.sqrt(np.mean((X[~train][:, -1:] - y[~train]) ** 2))
        assert rmse < 0.85 * naive, cell


def test_vae_finds_injected_anomalies() -> None:
    rng = np.random.RandomState(0)
    latent = rng.normal(size=(2000, 2))
    X = latent @ rng.normal(size=(2, 12)) + 0.1 * rng.normal(size=(2000, 12))  # a 2-D manifold
    anomalous = rng.choice(2000, size=40, replace=False)
    X[anomalous] = 2.0 * rng.normal(size=(40, 12))  # off the manifold, similar scale
    labels = np.isin(np.arange(2000), anomalous)
    for score in ("reconstruction", "elbo"):
        model = VAE(n_components=2, epochs=30, anomaly_score=score, patience=0).fit(X)
        assert roc_auc_score(labels, model.score_samples(X)) >= 0.9, score


def test_multitask_dnn_beats_single_task_dnns_on_related_targets_with_little_data() -> None:
    rng = np.random.RandomState(0)
    n_train, n_features, n_targets = 60, 20, 8
    shared = rng.normal(size=(n_features, 2)) / np.sqrt(n_features)  # one 2-D representation
    X = rng.normal(size=(n_train + 500, n_features))
    truth = np.tanh(2.0 * X @ shared) @ rng.normal(size=(2, n_targets))
    Y = truth + 0.5 * rng.normal(size=truth.shape)
    train, test = slice(0, n_train), slice(n_train, None)
    params = {
        "depth": 1,
        "width": 4,
        "activation": "tanh",
        "epochs": 100,
        "batch_size": 0,
        "learning_rate": 0.02,
        "patience": 0,
    }
    multi = DNN("multitarget", **params).fit(X[train], Y[train]).predict(X[test])
    single = np.column_stack(
        [
            DNN("regression", **params).fit(X[train], Y[train, j]).predict(X[test])
            for j in range(n_targets)
        ]
    )
    multi_rmse = np.sqrt(np.mean((multi - truth[test]) ** 2))
    single_rmse = np.sqrt(np.mean((single - truth[test]) ** 2))
    assert multi_rmse < 0.8 * single_rmse


def test_bpr_mf_beats_popularity_on_implicit_feedback_with_latent_structure() -> None:
    rng = np.random.RandomState(0)
    n_users, n_items, n_groups = 300, 200, 4
    user_group, item_group = (
        rng.randint(n_groups, size=n_users),
        rng.randint(n_groups, size=n_items),
    )
    popularity = rng.zipf(1.5, size=n_items).clip(max=50).astype(float)
    taste = np.where(user_group[:, None] == item_group[None, :], 1.0, 0.1) * popularity
    taste /= taste.sum(axis=1, keepdims=True)
    items = np.stack([rng.choice(n_items, size=20, replace=False, p=p) for p in taste])
    pairs = pd.DataFrame({"user": np.repeat(np.arange(n_users), 20), "item": items.ravel()})
    test = np.zeros((n_users, 20), dtype=bool)
    test[:, :5] = True  # five held-out interactions per user
    train_pairs, test_pairs = pairs[~test.ravel()], pairs[test.ravel()]
    model = NCF(
        model="gmf",
        loss="bpr",
        n_factors=16,
        epochs=30,
        batch_size=256,
        learning_rate=0.01,
        patience=0,
    ).fit(train_pairs)
    assert list(model.users_) == list(range(n_users))

    def matrix(frame: pd.DataFrame) -> np.ndarray:
        out = np.zeros((n_users, len(model.items_)), dtype=bool)
        out[frame["user"], np.searchsorted(model.items_, frame["item"])] = True
        return out

    relevant, seen = matrix(test_pairs), matrix(train_pairs)
    counts = seen.sum(axis=0).astype(float)
    bpr = ndcg_at_k(relevant, model.score_matrix(), k=10, mask=~seen)
    popular = ndcg_at_k(relevant, np.tile(counts, (n_users, 1)), k=10, mask=~seen)
    assert bpr > popular + 0.05
