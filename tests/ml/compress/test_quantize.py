"""int8 quantisation: smaller, close to the float model, refused where it cannot apply."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.metrics import roc_auc_score

from openmaas.errors import InvalidInput
from openmaas.ml.catalog import get_algorithm
from openmaas.ml.compress import OnnxPredictor, export_onnx, quantize
from openmaas.ml.preprocessing import fit_pipeline, make_pipeline


def test_quantised_dnn_stays_within_a_point_of_roc_auc() -> None:
    X, y = make_classification(2000, 20, n_informative=10, random_state=0)
    frame = pd.DataFrame(X, columns=[f"c{i}" for i in range(20)])
    train, test = slice(0, 1400), slice(1400, None)
    model = get_algorithm("dnn")(task_type="binary", width=128, epochs=20)
    pipe = fit_pipeline(make_pipeline(model, [(c, "numeric") for c in frame.columns]),
                        frame[train], y[train])  # fmt: skip
    exported = export_onnx(pipe)
    quantised = quantize(exported)
    rows = frame[test].to_numpy()
    before = roc_auc_score(y[test], OnnxPredictor(exported).predict_proba(rows)[:, 1])
    int8 = OnnxPredictor(quantised)
    after = roc_auc_score(y[test], int8.predict_proba(rows)[:, 1])

    assert len(quantised) < 0.6 * len(exported)
    assert abs(after - before) < 0.01
    assert int8.feature_names == list(frame.columns)  # the contract survives
    assert int8.classes is not None
    assert int8.classes.tolist() == [0, 1]


def test_tree_models_have_nothing_to_quantise(binary: Any) -> None:
    X, y = binary
    model = get_algorithm("lightgbm")(task_type="binary", n_estimators=5).fit(X.to_numpy(), y)
    with pytest.raises(InvalidInput, match="nothing to quantise: the model has no float32 weight"):
        quantize(export_onnx(model))


def test_quantised_regression_dnn_is_close(regression: Any) -> None:
    X, y = regression
    X = X.fillna(X.median())
    model = get_algorithm("dnn")(task_type="regression", epochs=30, width=64)
    pipe = fit_pipeline(make_pipeline(model, [(str(c), "numeric") for c in X.columns]), X, y)
    exported = export_onnx(pipe)
    rows = X.to_numpy()
    float_pred = OnnxPredictor(exported).predict(rows)
    int8_pred = OnnxPredictor(quantize(exported, per_channel=True)).predict(rows)
    assert np.abs(int8_pred - float_pred).max() < 0.05 * np.std(y)
