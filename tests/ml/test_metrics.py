"""The metric catalog: agreement with scikit-learn, ranking metrics by hand and by brute force."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from openmaas.errors import InvalidInput
from openmaas.ml.metrics import default_metrics, get_metric, metrics_for

RNG = np.random.default_rng(7)
Y_BIN = RNG.integers(0, 2, 60)
P_BIN = np.clip(Y_BIN * 0.3 + RNG.random(60) * 0.7, 0.01, 0.99)
Y_MC = RNG.integers(0, 3, 90)
P_MC = RNG.dirichlet([1, 1, 1], 90) + np.eye(3)[Y_MC] * 0.5
P_MC /= P_MC.sum(axis=1, keepdims=True)
Y_REG = RNG.normal(10, 2, 50)
P_REG = Y_REG + RNG.normal(0, 1, 50)


def _rmse(y: Any, p: Any) -> float:
    return math.sqrt(skm.mean_squared_error(y, p))


@pytest.mark.parametrize(
    ("name", "y", "pred", "expected"),
    [
        ("roc_auc", Y_BIN, P_BIN, skm.roc_auc_score(Y_BIN, P_BIN)),
        ("log_loss", Y_BIN, P_BIN, skm.log_loss(Y_BIN, P_BIN)),
        ("accuracy", Y_BIN, P_BIN > 0.5, skm.accuracy_score(Y_BIN, P_BIN > 0.5)),
        ("f1", Y_BIN, (P_BIN > 0.5).astype(int), skm.f1_score(Y_BIN, (P_BIN > 0.5).astype(int))),
        (
            "balanced_accuracy",
            Y_BIN,
            (P_BIN > 0.5).astype(int),
            skm.balanced_accuracy_score(Y_BIN, (P_BIN > 0.5).astype(int)),
        ),
        ("average_precision", Y_BIN, P_BIN, skm.average_precision_score(Y_BIN, P_BIN)),
        ("log_loss", Y_MC, P_MC, skm.log_loss(Y_MC, P_MC)),
        ("accuracy", Y_MC, P_MC.argmax(1), skm.accuracy_score(Y_MC, P_MC.argmax(1))),
        ("f1_macro", Y_MC, P_MC.argmax(1), skm.f1_score(Y_MC, P_MC.argmax(1), average="macro")),
        ("roc_auc_ovr", Y_MC, P_MC, skm.roc_auc_score(Y_MC, P_MC, multi_class="ovr")),
        ("rmse", Y_REG, P_REG, _rmse(Y_REG, P_REG)),
        ("mae", Y_REG, P_REG, skm.mean_absolute_error(Y_REG, P_REG)),
        ("r2", Y_REG, P_REG, skm.r2_score(Y_REG, P_REG)),
        ("mape", Y_REG, P_REG, skm.mean_absolute_percentage_error(Y_REG, P_REG)),
    ],
)
def test_metrics_agree_with_scikit_learn(name: str, y: Any, pred: Any, expected: float) -> None:
    value = get_metric(name)(y, pred)
    assert isinstance(value, float)
    assert value == pytest.approx(expected, rel=1e-12)


def test_binary_metrics_take_string_labels_and_probability_matrices() -> None:
    labels = np.where(Y_BIN == 1, "yes", "no")
    proba = np.column_stack([1 - P_BIN, P_BIN])
    assert get_metric("roc_auc")(labels, proba) == pytest.approx(skm.roc_auc_score(Y_BIN, P_BIN))
    assert get_metric("log_loss")(labels, proba) == pytest.approx(skm.log_loss(Y_BIN, P_BIN))
    predicted = np.where(P_BIN > 0.5, "yes", "no")
    f1 = skm.f1_score(Y_BIN, (P_BIN > 0.5).astype(int))
    assert get_metric("f1")(labels, predicted) == pytest.approx(f1)
    # an explicit positive class flips the meaning of the scores
    flipped = get_metric("average_precision")(labels, 1 - P_BIN, pos_label="no")
    assert flipped == pytest.approx(skm.average_precision_score(1 - Y_BIN, 1 - P_BIN))


def test_anomaly_scores_use_the_boolean_label() -> None:
    is_anomaly = Y_BIN.astype(bool)
    assert get_metric("roc_auc")(is_anomaly, P_BIN) == pytest.approx(
        skm.roc_auc_score(Y_BIN, P_BIN)
    )


def test_multitarget_metrics_average_over_targets() -> None:
    y = np.column_stack([Y_REG, Y_REG * 3])
    p = np.column_stack([P_REG, P_REG * 2])
    rmse = (_rmse(y[:, 0], p[:, 0]) + _rmse(y[:, 1], p[:, 1])) / 2
    assert get_metric("rmse")(y, p) == pytest.approx(rmse)
    r2 = (skm.r2_score(y[:, 0], p[:, 0]) + skm.r2_score(y[:, 1], p[:, 1])) / 2
    assert get_metric("r2")(y, p) == pytest.approx(r2)
    labels = np.array([["a", "x"], ["b", "y"], ["a", "y"], ["b", "x"]])
    guess = np.array([["a", "x"], ["a", "y"], ["a", "x"], ["b", "y"]])
    assert get_metric("accuracy")(labels, guess) == pytest.approx((3 / 4 + 2 / 4) / 2)


def test_scikit_learn_failures_become_invalid_input() -> None:
    with pytest.raises(InvalidInput, match=r"^cannot compute roc_auc: Only one class") as info:
        get_metric("roc_auc")(np.ones(5), np.arange(5.0))
    assert info.value.details == {"metric": "roc_auc"}
    with pytest.raises(InvalidInput, match=r"^cannot compute r2: R\^2 score is not well-defined"):
        get_metric("r2")([1.0], [2.0])
    with pytest.raises(InvalidInput, match=r"^cannot compute log_loss: y_true contains only one"):
        get_metric("log_loss")(["a", "a"], [0.2, 0.3])


# -- ranking ----------------------------------------------------------------------------

SCORES = np.array(
    [
        [0.9, 0.8, 0.7, 0.6, 0.5],  # ranks items 0, 1, 2, 3, 4
        [0.1, 0.2, 0.3, 0.4, 0.5],  # ranks items 4, 3, 2, 1, 0
        [0.3, 0.1, 0.2, 0.5, 0.4],  # no relevant item: left out
        [0.5, 0.4, 0.3, 0.2, 0.1],  # ranks items 0, 1, 2, 3, 4
    ]
)
RELEVANT = np.array(
    [
        [0, 1, 0, 1, 0],  # top 3 = 0, 1, 2: one hit at rank 2 of 2 relevant
        [0, 0, 0, 0, 1],  # top 3 = 4, 3, 2: hit at rank 1 of 1
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1],  # top 3 = 0, 1, 2: no hit
    ]
)
D2 = 1 / math.log2(3)  # discount of rank 2


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hit_rate@3", (1 + 1 + 0) / 3),
        ("recall@3", (1 / 2 + 1 + 0) / 3),
        ("precision@3", (1 / 3 + 1 / 3 + 0) / 3),
        ("mrr@3", (1 / 2 + 1 + 0) / 3),
        ("ndcg@3", (D2 / (1 + D2) + 1 + 0) / 3),
        ("recall@1", (0 + 1 + 0) / 3),
        ("ndcg@5", (D2 / (1 + D2) + (1 / math.log2(5)) / (1 + D2) + 1 + 1 / math.log2(6)) / 3),
    ],
)
def test_ranking_metrics_by_hand(name: str, expected: float) -> None:
    assert get_metric(name)(RELEVANT, SCORES) == pytest.approx(expected, rel=1e-12)


def test_ranking_mask_removes_candidates() -> None:
    mask = np.ones_like(RELEVANT, dtype=bool)
    mask[0, 0] = False  # user 0's first item was seen in training: now 1, 2, 3 are the top 3
    mask[3, 4] = False  # user 3's only relevant item is masked: the user drops out
    assert get_metric("recall@3")(RELEVANT, SCORES, mask=mask) == pytest.approx((1 + 1) / 2)
    assert get_metric("mrr@3")(RELEVANT, SCORES, mask=mask) == pytest.approx((1 + 1) / 2)
    ndcg = (1 + 1 / 2) / (1 + D2)  # hits at ranks 1 and 3
    assert get_metric("ndcg@3")(RELEVANT, SCORES, mask=mask) == pytest.approx((ndcg + 1) / 2)


def test_a_cutoff_past_the_item_count_ranks_everything() -> None:
    assert get_metric("recall@50")(RELEVANT, SCORES) == pytest.approx(1.0)
    assert get_metric("precision@10")(RELEVANT, SCORES) == pytest.approx((2 + 1 + 1) / 10 / 3)


def _reference(name: str, k: int, relevant: Any, scores: Any) -> float:
    """RecBole's definitions, one user at a time."""
    values = []
    for rel, score in zip(relevant, scores, strict=True):
        positives = set(np.flatnonzero(rel))
        if not positives:
            continue
        top = sorted(range(len(score)), key=lambda i: (-score[i], i))[:k]
        hits = [item in positives for item in top]
        if name == "hit_rate":
            values.append(float(any(hits)))
        elif name == "recall":
            values.append(sum(hits) / len(positives))
        elif name == "precision":
            values.append(sum(hits) / k)
        elif name == "mrr":
            values.append(1 / (hits.index(True) + 1) if any(hits) else 0.0)
        else:
            dcg = sum(1 / math.log2(r + 2) for r, hit in enumerate(hits) if hit)
            idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(positives))))
            values.append(dcg / idcg)
    return float(np.mean(values))


@pytest.mark.parametrize("base", ["hit_rate", "recall", "precision", "mrr", "ndcg"])
@pytest.mark.parametrize("k", [1, 5, 20])
def test_ranking_metrics_match_a_per_user_reference(base: str, k: int) -> None:
    rng = np.random.default_rng(k)
    relevant = rng.random((40, 30)) < 0.1
    scores = rng.random((40, 30))
    expected = _reference(base, k, relevant, scores)
    assert get_metric(f"{base}@{k}")(relevant, scores) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("relevant", "scores", "kw", "message"),
    [
        (
            np.zeros((2, 3)),
            np.ones((2, 3)),
            {},
            "no user has a relevant item, so ranking metrics are undefined",
        ),
        (
            np.ones((2, 3)),
            np.ones((2, 4)),
            {},
            "ranking metrics need relevance and score matrices of one shape (users, items),"
            " got (2, 3) and (2, 4)",
        ),
        (
            np.ones(3),
            np.ones(3),
            {},
            "ranking metrics need relevance and score matrices of one shape (users, items),"
            " got (3,) and (3,)",
        ),
        (np.ones((1, 2)), np.array([[0.1, np.nan]]), {}, "ranking scores contain NaN"),
        (
            np.ones((1, 2)),
            np.ones((1, 2)),
            {"mask": np.ones((1, 3))},
            "mask has shape (1, 3), expected (1, 2)",
        ),
    ],
)
def test_ranking_input_errors(relevant: Any, scores: Any, kw: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=f"^{re.escape(message)}$"):
        get_metric("ndcg@5")(relevant, scores, **kw)


# -- catalog ----------------------------------------------------------------------------


def test_ranking_names_carry_their_cutoff() -> None:
    metric = get_metric("ndcg@10")
    assert (metric.name, metric.base_name, metric.k) == ("ndcg@10", "ndcg", 10)
    assert metric.task_types == {"recommendation"}
    assert metric.needs_scores and metric.greater_is_better


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ndcg", "metric 'ndcg' needs a cutoff, e.g. 'ndcg@10'"),
        (
            "auc",
            "unknown metric 'auc'; valid: roc_auc, log_loss, accuracy, f1, balanced_accuracy, "
            "average_precision, f1_macro, roc_auc_ovr, rmse, mae, r2, mape, recall@k, ndcg@k, "
            "hit_rate@k, mrr@k, precision@k (k a positive integer)",
        ),
        ("ndcg@0", "unknown metric 'ndcg@0'"),
        ("ndcg@k", "unknown metric 'ndcg@k'"),
        ("ndcg@05", "unknown metric 'ndcg@05'"),
        ("map@10", "unknown metric 'map@10'"),
    ],
)
def test_unknown_metric_names_list_the_valid_ones(name: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=f"^{re.escape(message)}") as info:
        get_metric(name)
    assert info.value.details["metric"] == name


def test_metrics_for_each_task_type() -> None:
    assert metrics_for("regression") == ["rmse", "mae", "r2", "mape"]
    assert metrics_for("multiclass") == [
        "log_loss",
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "roc_auc_ovr",
    ]
    assert metrics_for("multitarget") == ["accuracy", "rmse", "mae", "r2"]
    assert metrics_for("anomaly") == ["roc_auc", "average_precision"]
    assert metrics_for("sequence") == ["accuracy", "rmse", "mae", "mape"]
    assert metrics_for("recommendation") == [
        "recall@k",
        "ndcg@k",
        "hit_rate@k",
        "mrr@k",
        "precision@k",
    ]
    with pytest.raises(InvalidInput, match=r"^unknown task type 'ranking'; valid: binary, "):
        metrics_for("ranking")


@pytest.mark.parametrize(
    "task_type",
    ["binary", "multiclass", "regression", "multitarget", "anomaly", "recommendation", "sequence"],
)
def test_defaults_apply_to_their_type(task_type: str) -> None:
    names = default_metrics(task_type)
    assert names
    for name in names:
        assert task_type in get_metric(name).task_types


def test_directions() -> None:
    minimized = {"log_loss", "rmse", "mae", "mape"}
    for name in metrics_for("binary") + metrics_for("regression") + ["mrr@3"]:
        metric = get_metric(name)
        assert metric.direction == ("minimize" if name in minimized else "maximize")
        assert metric.greater_is_better == (name not in minimized)
