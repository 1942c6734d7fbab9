"""External runs: predictions made elsewhere, checked and scored by the server."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import openmaas.jobs.handlers.run  # noqa: F401  (registers the "run" job kind)
from openmaas import demo as demo_data
from openmaas.client.models import Task
from openmaas.errors import InvalidInput
from openmaas.jobs.worker import Worker
from openmaas.ml.engine.external import score_uploaded
from openmaas.ml.splits import compute_splits
from openmaas.ml.tasks import TaskSpec
from openmaas.testing.world import confident_predictions


@pytest.fixture
def demo(platform, admin, monkeypatch):  # type: ignore[no-untyped-def]
    """The demo tasks these tests use (loading the others costs seconds per test)."""
    used = ("breast_cancer", "wine", "diabetes")
    monkeypatch.setattr(demo_data, "DEMOS", {n: demo_data.DEMOS[n] for n in used})
    demo_data.load_demo(platform)
    return {t.name: t for t in admin.tasks.list(project="demo/benchmarks")}


def work(platform) -> None:  # type: ignore[no-untyped-def]
    Worker(platform, kinds=["run"], concurrency=1, poll_interval=0.05).run_until_idle(timeout=300)


def parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def upload(http, token: str, task_id: int, body: bytes, fmt: str = "parquet", **params: Any):  # type: ignore[no-untyped-def]
    return http.post(
        f"/api/v1/tasks/{task_id}/runs/external",
        params={"format": fmt, **params},
        content=body,
        headers={"Authorization": f"Bearer {token}"},
    )


def test_an_upload_scores_as_the_platform_scores_its_own_runs(platform, admin, http, demo) -> None:
    names = ["breast_cancer", "wine", "diabetes"]  # binary, multiclass, regression
    queued = {name: admin.runs.create(demo[name], "linear") for name in names}
    work(platform)
    for name, queued_run in queued.items():
        run = admin.runs.get(queued_run)
        assert run.state == "succeeded", run.error
        predictions = admin.runs.predictions(run)
        test = predictions[predictions["part"] == "test"]
        bare = test.drop(columns=["outer_fold", "part", "inner_fold"])
        for body in (parquet(bare), parquet(test), parquet(predictions)):
            r = upload(http, admin.token, demo[name].id, body, algorithm="linear-elsewhere")
            assert r.status_code == 201, r.text
            out = r.json()
            assert (out["kind"], out["state"], out["algorithm"]) == (
                "external",
                "succeeded",
                "linear-elsewhere",
            )
            assert (out["score"], out["score_std"], out["metrics"]) == (
                run.score,
                run.score_std,
                run.metrics,
            )
        stored = admin.runs.predictions(out["id"])  # the last upload: with oof lines
        pd.testing.assert_frame_equal(stored, predictions, check_dtype=False)
        csv = upload(http, admin.token, demo[name].id, bare.to_csv(index=False).encode(), "csv")
        assert csv.status_code == 201, csv.text
        assert csv.json()["score"] == pytest.approx(run.score, rel=1e-12)
    board = admin.runs.leaderboard(demo["breast_cancer"])
    assert {e.kind for e in board} == {"platform", "external"}
    assert len(admin.runs.leaderboard(demo["breast_cancer"], kind="external").items) == 4


def valid_upload(admin, task: Task) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    frame = admin.datasets.to_pandas(task.dataset_id, task.dataset_version)
    return confident_predictions(frame, admin.tasks.splits(task), "target")


Change = Callable[[pd.DataFrame], pd.DataFrame]


def _set(column: str, line: int, value: Any) -> Change:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.astype({column: object})
        out.loc[line, column] = value
        return out

    return change


def test_bad_uploads_are_refused_and_store_nothing(platform, admin, http, demo) -> None:
    task = demo["breast_cancer"]
    good = valid_upload(admin, task)
    rows = good["row"].to_numpy()
    train_row = int(np.setdiff1d(np.arange(task.n_rows), rows)[0])
    expects = (
        "a binary task expects row, prediction, proba_benign, proba_malignant "
        "(optional: outer_fold, part, inner_fold)"
    )
    cases: list[tuple[Change, str]] = [
        (
            lambda f: f.iloc[3:],
            f"no prediction for 3 of the task's {len(rows)} test rows: "
            f"{rows[0]}, {rows[1]}, {rows[2]}",
        ),
        (
            lambda f: pd.concat([f, f.iloc[[0]].assign(row=train_row)]),
            "predictions for rows that are not test rows of this task (only ever trained on): "
            f"{train_row}; predict the test part of each outer fold (see the task's splits)",
        ),
        (
            lambda f: pd.concat([f, f.iloc[[0]].assign(row=10_000)]),
            "row ids out of range (the task has 569 rows, ids 0..568): 10000",
        ),
        (
            lambda f: pd.concat([f, f.iloc[[1, 2]]]),
            f"row ids given more than once among the test predictions: {rows[1]}, {rows[2]}; "
            "give one prediction per test row",
        ),
        (
            lambda f: f.drop(columns="proba_malignant"),
            "the predictions lack column 'proba_malignant'; the task's metrics roc_auc, "
            f"accuracy, log_loss need a probability per class; {expects}",
        ),
        (
            lambda f: f.drop(columns="prediction"),
            f"the predictions lack column 'prediction'; {expects}",
        ),
        (lambda f: f.assign(index=1), f"unexpected column 'index'; {expects}"),
        (
            lambda f: f.assign(row=f["row"].astype(str)),
            "column 'row' must hold integer row ids, got str",
        ),
        (_set("prediction", 2, None), "column 'prediction' has 1 missing value (first at line 2)"),
        (
            _set("prediction", 0, "maybe"),
            "column 'prediction' holds labels that are not classes of the task: 'maybe' "
            "(on 1 line); the classes are 'benign', 'malignant'",
        ),
        (
            lambda f: f.assign(proba_benign=f["proba_benign"].where(f.index != 4)),
            "column 'proba_benign' has 1 missing or infinite value (first at line 4)",
        ),
        (
            _set("proba_benign", 0, 1.5),
            "column 'proba_benign' holds probabilities outside 0..1 (first at line 0)",
        ),
        (
            lambda f: f.assign(proba_benign=0.5, proba_malignant=0.6),
            f"the class probabilities on {len(rows)} lines do not sum to 1 (line 0: 1.1); "
            "give one probability per class",
        ),
    ]
    blobs = {d for d, _ in platform.artifacts.iter_blobs()}
    auth = {"Authorization": f"Bearer {admin.token}"}
    for change, message in cases:
        r = upload(http, admin.token, task.id, parquet(change(good.copy())))
        assert r.status_code == 422, (message, r.text)
        assert r.json()["error"]["message"] == message
    r = upload(http, admin.token, task.id, b"not a parquet file")
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_file"
    assert r.json()["error"]["message"].startswith("cannot read the predictions as parquet: ")
    r = upload(http, admin.token, task.id, b"{}", "jsonl")
    assert (
        r.json()["error"]["message"] == "unsupported predictions format 'jsonl'; use parquet or csv"
    )
    r = upload(http, admin.token, task.id, parquet(good), params="[1]")
    assert r.json()["error"]["message"] == 'params must be a JSON object, e.g. {"C": 1.0}'
    assert http.get("/api/v1/runs", headers=auth).json()["total"] == 0
    assert {d for d, _ in platform.artifacts.iter_blobs()} == blobs
    ok = upload(http, admin.token, task.id, parquet(good), params='{"C": 2}', name="mine")
    assert ok.status_code == 201, ok.text
    assert (ok.json()["params"], ok.json()["name"]) == ({"C": 2}, "mine")


def test_labels_read_from_csv_match_the_target_type(admin, http, demo) -> None:
    task = demo["breast_cancer"]
    good = valid_upload(admin, task)
    as_parquet = upload(http, admin.token, task.id, parquet(good)).json()
    as_csv = upload(http, admin.token, task.id, good.to_csv(index=False).encode(), "csv").json()
    assert as_csv["metrics"]["accuracy"] == as_parquet["metrics"]["accuracy"]
    assert as_csv["score"] == pytest.approx(as_parquet["score"])


def test_evaluate_an_estimator_on_a_task(admin, demo) -> None:
    task = admin.tasks.get(demo["breast_cancer"].id)
    run = task.evaluate(make_pipeline(StandardScaler(), LogisticRegression()), name="lr")
    assert (run.kind, run.state, run.algorithm, run.name) == (
        "external",
        "succeeded",
        "LogisticRegression",
        "lr",
    )
    assert run.params["logisticregression__C"] == 1.0 and "steps" not in run.params
    assert run.score > 0.95
    board = admin.runs.leaderboard(task, kind="external")
    assert [e.run_id for e in board] == [run.id]
    regression = admin.tasks.list(name="diabetes").items[0].evaluate(Ridge())
    assert regression.algorithm == "Ridge" and 40 < regression.score < 70
    with pytest.raises(InvalidInput, match=r"fetch the task with client\.tasks\.get"):
        Task(task.to_dict()).evaluate(Ridge())


# The scoring itself, without a server ---------------------------------------------------


def _splits(spec: dict[str, Any], frame: pd.DataFrame) -> tuple[TaskSpec, Any]:
    task = TaskSpec.model_validate(spec)
    return task, compute_splits(task, frame)


def test_anomaly_and_multitarget_uploads() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"a": rng.normal(size=60), "b": rng.normal(size=60), "label": [0] * 50 + [1] * 10}
    )
    outer = {"method": "kfold", "k": 3}
    spec, splits = _splits(
        {"type": "anomaly", "target_columns": ["label"], "protocol": {"outer": outer}}, frame
    )
    score = frame["label"] + rng.normal(scale=0.1, size=60)  # a good detector
    scored = score_uploaded(
        pd.DataFrame({"row": np.arange(60), "score": score}), spec, splits, frame
    )
    assert scored.score is not None and scored.score > 0.9 and len(scored.folds) == 3
    assert scored.predictions["part"].tolist() == ["test"] * 60
    spec, splits = _splits(
        {"type": "multitarget", "target_columns": ["a", "b"], "protocol": {"outer": outer}},
        frame,
    )
    exact = pd.DataFrame(
        {"row": np.arange(60), "prediction_a": frame["a"], "prediction_b": frame["b"]}
    )
    assert score_uploaded(exact, spec, splits, frame).score == 0.0  # rmse
    with pytest.raises(InvalidInput, match=r"^no prediction for 1 of the task's 60 test rows: 59$"):
        score_uploaded(exact.iloc[:-1], spec, splits, frame)


def test_oof_lines_are_checked_and_kept() -> None:
    frame = pd.DataFrame({"x": np.arange(40.0), "y": ["a", "b"] * 20})
    spec, splits = _splits(
        {"type": "binary", "target_columns": ["y"], "metrics": ["accuracy"]}, frame
    )
    train, test = splits.train_test(0)
    lines = pd.DataFrame(
        {
            "row": np.concatenate([test, train]),
            "part": ["test"] * len(test) + ["oof"] * len(train),
            "outer_fold": 0,
            "prediction": frame["y"].to_numpy()[np.concatenate([test, train])],
        }
    )
    scored = score_uploaded(lines, spec, splits, frame)
    assert scored.score == 1.0
    kept = scored.predictions
    assert kept["part"].tolist() == ["oof"] * len(train) + ["test"] * len(test)
    oof = kept[kept["part"] == "oof"]
    assert (oof["inner_fold"].to_numpy() == splits.inner[0][oof["row"].to_numpy()]).all()
    assert oof["inner_fold"].is_monotonic_increasing
    wrong = lines.assign(inner_fold=np.where(lines["part"] == "oof", 5, -1))
    with pytest.raises(InvalidInput, match=r"^wrong inner_fold on \d+ oof predictions: row "):
        score_uploaded(wrong, spec, splits, frame)
    with pytest.raises(InvalidInput, match=r"^wrong outer_fold on \d+ test predictions: row "):
        score_uploaded(lines.assign(outer_fold=1), spec, splits, frame)
    with pytest.raises(InvalidInput, match=r"^lines with part 'oof' need an outer_fold column$"):
        score_uploaded(lines.drop(columns="outer_fold"), spec, splits, frame)
    with pytest.raises(InvalidInput, match=r"^column 'part' must be 'test' or 'oof', got 'val'$"):
        score_uploaded(lines.assign(part="val"), spec, splits, frame)


def test_recommendation_and_sequence_uploads_are_not_supported_yet() -> None:
    frame = pd.DataFrame({"u": [1, 2] * 10, "i": range(20), "r": [1.0] * 20})
    spec = TaskSpec.model_validate(
        {
            "type": "recommendation",
            "recommendation": {"user_column": "u", "item_column": "i", "rating_column": "r"},
        }
    )
    message = (
        "uploading predictions for recommendation tasks is not supported yet; it is for "
        "binary, multiclass, regression, multitarget, anomaly tasks"
    )
    with pytest.raises(InvalidInput, match=f"^{message}$"):
        score_uploaded(pd.DataFrame({"user": [1]}), spec, None, frame)  # type: ignore[arg-type]
