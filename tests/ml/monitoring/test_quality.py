"""Live quality from feedback: agrees with scikit-learn, merges across replicas."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from openmaas.errors import InvalidInput
from openmaas.ml.monitoring import ClassificationQuality, RegressionQuality

RNG = np.random.default_rng(11)
Y = RNG.integers(0, 3, 600)
P = RNG.dirichlet([1, 1, 1], 600) + np.eye(3)[Y] * 0.6
P /= P.sum(axis=1, keepdims=True)
CLASSES = ["cat", "dog", "eel"]
LABELS = np.asarray(CLASSES)[Y]


def test_classification_matches_sklearn_and_merges() -> None:
    replicas = [ClassificationQuality(CLASSES) for _ in range(3)]
    for i, idx in enumerate(np.array_split(np.arange(600), 12)):
        replicas[i % 3].add(LABELS[idx], proba=P[idx])
    merged = ClassificationQuality.from_dict(json.loads(json.dumps(replicas[0].to_dict())))
    for other in replicas[1:]:
        merged.merge(other)
    r = merged.result()
    assert r["rows"] == 600
    assert r["accuracy"] == pytest.approx(skm.accuracy_score(Y, P.argmax(1)))
    assert r["log_loss"] == pytest.approx(skm.log_loss(Y, P))
    assert r["brier"] == pytest.approx(np.mean(np.sum((P - np.eye(3)[Y]) ** 2, axis=1)))
    assert r["confusion"] == skm.confusion_matrix(Y, P.argmax(1)).tolist()


def test_classification_from_predicted_labels_counts_unknown_labels() -> None:
    q = ClassificationQuality([0, 1])
    q.add([0, 1, 1, 7], y_pred=[0, 1, 0, 1])
    r = q.result()
    assert (r["rows"], r["unknown"], r["accuracy"], r["log_loss"]) == (3, 1, 2 / 3, None)


def test_classification_bad_feedback() -> None:
    q = ClassificationQuality(CLASSES)
    with pytest.raises(InvalidInput, match=r"probabilities have shape \(2, 2\), expected \(2, 3\)"):
        q.add(["cat", "dog"], proba=[[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(InvalidInput, match="feedback needs predicted classes or probabilities"):
        q.add(["cat"])
    with pytest.raises(InvalidInput, match="at least two distinct classes"):
        ClassificationQuality(["a", "a"])


def test_regression_matches_sklearn_merges_and_skips_non_finite() -> None:
    y = RNG.normal(50, 10, 500)
    p = y + RNG.normal(1, 3, 500)
    a, b = RegressionQuality(), RegressionQuality()
    a.add(y[:200], p[:200])
    b.add(np.r_[y[200:], np.nan], np.r_[p[200:], 1.0])
    merged = RegressionQuality.from_dict(json.loads(json.dumps(a.to_dict())))
    merged.merge(b)
    r = merged.result()
    assert (r["rows"], r["skipped"]) == (500, 1)
    assert r["mae"] == pytest.approx(skm.mean_absolute_error(y, p))
    assert r["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(y, p)))
    assert r["r2"] == pytest.approx(skm.r2_score(y, p))
    assert r["bias"] == pytest.approx(np.mean(p - y))


def test_empty_regression_window_has_no_scores() -> None:
    r = RegressionQuality().result()
    assert r == {"rows": 0, "skipped": 0, "mae": None, "rmse": None, "bias": None, "r2": None}
