"""Distillation: a small student of a large LightGBM model, as good, faster, deployable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score

from openmaas.errors import InvalidInput
from openmaas.ml.catalog.gbdt import LightGBM
from openmaas.ml.catalog.persist import load_pipeline, save_pipeline
from openmaas.ml.catalog.torch.dnn import DNN
from openmaas.ml.compress import OnnxPredictor, compression_report, distill, export_onnx


@pytest.fixture(scope="module")
def large_teacher() -> dict[str, Any]:
    """1,000 trees of up to 63 leaves on 3,000 generated rows; 1,000 rows held out."""
    X, y = make_classification(4000, 12, n_informative=8, n_redundant=2, flip_y=0.02,
                               class_sep=1.0, random_state=0)  # fmt: skip
    params = {"objective": "binary", "num_leaves": 63, "learning_rate": 0.05,
              "min_child_samples": 10, "num_threads": 1, "deterministic": True,
              "verbosity": -1, "seed": 0}  # fmt: skip
    teacher = lgb.train(params, lgb.Dataset(X[:3000], y[:3000]), num_boost_round=1000)
    assert teacher.num_trees() == 1000
    student = distill(teacher.predict, X[:3000], "binary",
                      params={"n_estimators": 150, "num_leaves": 31})  # fmt: skip
    return {"teacher": teacher, "student": student, "X": X[3000:], "y": y[3000:]}


def test_student_of_a_large_lightgbm_is_as_good_and_5x_faster(large_teacher: Any) -> None:
    teacher, student = large_teacher["teacher"], large_teacher["student"]
    X, y = large_teacher["X"], large_teacher["y"]
    booster = student.steps[-1][1].booster_
    report = compression_report(teacher.predict, booster.predict, X, y, "roc_auc",
                                len(teacher.model_to_string()),
                                len(booster.model_to_string()), repeats=7)  # fmt: skip

    assert report["metric"]["change"] > -0.01, report["metric"]
    teacher_acc = accuracy_score(y, teacher.predict(X) > 0.5)
    assert accuracy_score(y, student.predict(pd.DataFrame(X, columns=_names(X)))) > (
        teacher_acc - 0.01
    )
    assert report["latency_per_row_s"]["speedup"] >= 5, report["latency_per_row_s"]
    assert report["size_bytes"]["ratio"] > 5


def test_student_deploys_like_any_version(large_teacher: Any, tmp_path: Path) -> None:
    student, X = large_teacher["student"], large_teacher["X"]
    frame = pd.DataFrame(X, columns=_names(X))
    save_pipeline(student, tmp_path / "student")
    loaded = load_pipeline(tmp_path / "student")

    assert isinstance(loaded.steps[-1][1], LightGBM)
    np.testing.assert_array_equal(loaded.predict_proba(frame), student.predict_proba(frame))
    text = student.steps[-1][1].booster_.model_to_string()  # also a bare booster version
    bare = lgb.Booster(model_str=text)
    np.testing.assert_allclose(bare.predict(X), student.predict_proba(frame)[:, 1])
    onnx_model = OnnxPredictor(export_onnx(loaded))
    np.testing.assert_allclose(onnx_model.predict_proba(X), loaded.predict_proba(frame), atol=1e-4)


def test_mlp_student_of_a_multiclass_teacher(multiclass: Any, tmp_path: Path) -> None:
    X, y = multiclass
    X = X.fillna(X.median())
    teacher = LightGBM(task_type="multiclass", n_estimators=100).fit(X, y)
    student = distill(teacher.predict_proba, X, "multiclass", student="mlp",
                      classes=teacher.classes_, params={"epochs": 150})  # fmt: skip

    model = student.steps[-1][1]
    assert isinstance(model, DNN)
    assert model.classes_.tolist() == ["a", "b", "c"]
    assert accuracy_score(teacher.predict(X), student.predict(X)) > 0.95
    save_pipeline(student, tmp_path / "mlp")
    loaded = load_pipeline(tmp_path / "mlp")
    np.testing.assert_allclose(loaded.predict_proba(X), student.predict_proba(X), atol=1e-6)


@pytest.mark.parametrize("kind", ["lightgbm", "mlp"])
def test_regression_students_follow_the_teacher(kind: str, regression: Any) -> None:
    X, y = regression
    X = X.fillna(X.median())
    teacher = LightGBM(task_type="regression", n_estimators=200, num_leaves=7).fit(X, y)
    student = distill(teacher.predict, X, "regression", student=kind)  # type: ignore[arg-type]
    assert r2_score(teacher.predict(X), student.predict(X)) > 0.8


def test_binary_student_from_a_pipeline_teacher_on_a_frame(binary: Any) -> None:
    X, y = binary
    teacher = LightGBM(task_type="binary", n_estimators=100).fit(X, y)
    student = distill(lambda frame: teacher.predict_proba(frame)[:, 1], X, "binary")
    assert roc_auc_score(y, student.predict_proba(X)[:, 1]) > 0.97
    assert [name for name, _ in student.steps[0][1].columns] == list(X.columns)


def test_bad_teacher_output_and_arguments(binary: Any) -> None:
    X, y = binary
    with pytest.raises(InvalidInput, match="probabilities are not in \\[0, 1\\] summing to 1"):
        distill(lambda _: np.full((len(X), 2), 0.7), X, "binary")
    with pytest.raises(InvalidInput, match="the teacher returned 3 predictions for 569 rows"):
        distill(lambda _: np.zeros(3), X, "regression")
    with pytest.raises(InvalidInput, match="y_type must be one of binary, multiclass"):
        distill(lambda _: y, X, "ranking")
    with pytest.raises(InvalidInput, match="student must be one of lightgbm, dnn, mlp"):
        distill(lambda _: y, X, "regression", student="forest")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="hyperparameter 'num_leaves' of algorithm"):
        distill(lambda _: y * 1.0, X, "regression", params={"num_leaves": 1})


def _names(X: np.ndarray) -> list[str]:
    return [f"f{i}" for i in range(X.shape[1])]
