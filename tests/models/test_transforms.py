"""Compression as version transforms: ONNX export and distillation through the API, run by
a worker, registered as new versions that deploy like any other."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

import openmaas.jobs.handlers.run  # registers the "run" job kind
import openmaas.jobs.handlers.transform  # noqa: F401  (registers "transform")
from openmaas.demo import load_demo
from openmaas.jobs.worker import Worker
from openmaas.store.metadata.tables import Job

pytest.importorskip("onnxruntime")


def _auth(client) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {client.token}"}


def work(platform, kinds=("run", "transform")) -> None:  # type: ignore[no-untyped-def]
    Worker(platform, kinds=list(kinds), concurrency=1, poll_interval=0.05).run_until_idle(
        timeout=300
    )


def _version_of_run(platform, http, auth, task_id, name, params):  # type: ignore[no-untyped-def]
    """A model ``name`` whose version 1 is a LightGBM run on task ``task_id``."""
    run = http.post(f"/api/v1/tasks/{task_id}/runs",
                    json={"algorithm": "lightgbm", "params": params}, headers=auth)  # fmt: skip
    assert run.status_code == 201, run.text
    work(platform, ["run"])
    assert http.get(f"/api/v1/runs/{run.json()['id']}", headers=auth).json()["state"] == (
        "succeeded"
    )
    project_id = http.get(f"/api/v1/tasks/{task_id}", headers=auth).json()["project_id"]
    model = http.post(f"/api/v1/projects/{project_id}/models", json={"name": name},
                      headers=auth).json()  # fmt: skip
    r = http.post(f"/api/v1/models/{model['id']}/versions", json={"run_id": run.json()["id"]},
                  headers=auth)  # fmt: skip
    assert r.status_code == 201, r.text
    return project_id, model, r.json()


def _transform(platform, http, auth, model_id, kind, **params):  # type: ignore[no-untyped-def]
    r = http.post(f"/api/v1/models/{model_id}/versions/1/transforms",
                  json={"kind": kind, "params": params}, headers=auth)  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "queued" and r.json()["result"] is None
    work(platform, ["transform"])
    job = http.get(f"/api/v1/transforms/{r.json()['id']}", headers=auth).json()
    assert job["state"] == "succeeded", job
    result = job["result"]
    version = http.get(f"/api/v1/models/{model_id}/versions/{result['version']}",
                       headers=auth).json()  # fmt: skip
    return job, version


def test_onnx_export_predicts_like_its_parent_and_deploys(platform, admin, http) -> None:
    load_demo(platform)
    task = next(t for t in admin.tasks.list(project="demo/benchmarks") if t.name == "breast_cancer")
    auth = _auth(admin)
    _, model, parent = _version_of_run(
        platform, http, auth, task.id, "cancer", {"n_estimators": 60}
    )
    job, onnx = _transform(platform, http, auth, model["id"], "onnx")
    assert onnx["flavor"] == "onnx" and onnx["version"] == 2
    assert [f["path"] for f in onnx["files"]] == ["model.onnx"]
    assert onnx["lineage"]["parent_id"] == parent["id"]
    assert onnx["lineage"]["task_id"] == task.id and onnx["lineage"]["run_id"] is not None
    report = onnx["transform"]["report"]
    assert onnx["transform"]["kind"] == "onnx" and job["result"]["report"] == report
    assert report["max_abs_diff"] < 1e-4
    assert report["metric"]["name"] == "roc_auc"
    assert abs(report["metric"]["change"]) < 1e-6
    assert report["size_bytes"]["before"] == parent["size_bytes"]
    assert report["latency_per_row_s"]["after"] > 0 and report["eval_rows"] > 50
    assert {c["name"] for c in onnx["signature"]["inputs"]} == {
        c["name"] for c in parent["signature"]["inputs"]
    }

    # Both versions, loaded as serving loads them, give the same answers.
    native, exported = (admin.models.load(f"cancer@{v}") for v in (1, 2))
    frame = admin.datasets.to_pandas(task.dataset_id)
    X = frame[[c["name"] for c in onnx["signature"]["inputs"]]].head(40)
    a, b = native.predictor.predict(X), exported.predictor.predict(X.to_numpy())
    np.testing.assert_allclose(b.probabilities, a.probabilities, atol=1e-4)
    assert list(b.predictions) == list(a.predictions)
    assert exported.predictor.classes == native.predictor.classes


def _deploy_and_predict(http, auth, project_id, version, name, body):  # type: ignore[no-untyped-def]
    r = http.post(
        f"/api/v1/projects/{project_id}/endpoints",
        json={"name": name, "targets": [{"version_id": version["id"], "weight": 100}]},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    out = http.post(f"/api/v1/endpoints/{name}/predict", json=body, headers=auth)
    assert out.status_code == 200, out.text
    assert out.json()["version"] == version["id"]
    return out.json()


def _big_binary(n: int = 6000, features: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(n, features))
    logit = X[:, 0] * 1.5 - X[:, 1] + np.sin(2 * X[:, 2]) + X[:, 3] * X[:, 4] - 0.5 * X[:, 5] ** 2
    y = (logit + rng.logistic(size=n) * 0.7 > 0).astype(int)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(features)])
    frame["label"] = y
    return frame


def test_a_distilled_student_keeps_the_metric_and_is_much_faster(platform, admin, http) -> None:
    """A 1,500-tree LightGBM teacher, uploaded, distilled on the rows of a task named by id."""
    import lightgbm as lgb

    admin.orgs.create("lab")
    project = admin.projects.create("lab", "compress")
    frame = _big_binary()
    ds = admin.datasets.upload(project, frame, name="synthetic", target="label")
    task = admin.tasks.create(
        project, "synthetic", ds, type="binary", target="label",
        protocol={"outer": {"method": "holdout", "test_fraction": 0.25}, "seed": 3},
    )  # fmt: skip
    train = admin.tasks.splits(task)["outer"].to_numpy() == -1
    features = frame.drop(columns="label")
    params = {"objective": "binary", "num_leaves": 31, "learning_rate": 0.03, "verbose": -1,
              "seed": 1, "num_threads": 1}  # fmt: skip
    data = lgb.Dataset(features[train], frame["label"][train])
    teacher = lgb.train(params, data, num_boost_round=1500)
    auth = _auth(admin)
    model = http.post(f"/api/v1/projects/{project.id}/models", json={"name": "teacher"},
                      headers=auth).json()  # fmt: skip
    r = http.post(f"/api/v1/models/{model['id']}/versions/upload",
                  params={"filename": "model.txt"}, content=teacher.model_to_string().encode(),
                  headers=auth)  # fmt: skip
    assert r.status_code == 201, r.text
    parent = r.json()
    _, student = _transform(
        platform, http, auth, model["id"], "distill", student="lightgbm", task_id=task.id
    )
    assert student["flavor"] == "pipeline" and student["lineage"]["parent_id"] == parent["id"]
    assert "pipeline.json" in {f["path"] for f in student["files"]}
    assert student["transform"]["params"] == {
        "student": "lightgbm",
        "student_params": {},
        "task_id": task.id,
    }
    report = student["transform"]["report"]
    metric = report["metric"]
    assert metric["name"] == "roc_auc" and metric["before"] > 0.85, report
    assert metric["after"] >= metric["before"] - 0.01, report
    assert report["eval_rows"] == int((~train).sum())
    assert report["latency_per_row_s"]["speedup"] >= 5, report
    assert report["size_bytes"]["after"] < report["size_bytes"]["before"] / 5

    # The student deploys and answers like any version.
    rows = features.head(10)
    answer = _deploy_and_predict(http, auth, project.id, student, "student",
                                 {"records": rows.to_dict(orient="records")})  # fmt: skip
    assert answer["classes"] == [0, 1] and np.asarray(answer["probabilities"]).shape == (10, 2)
    assert set(answer["predictions"]) <= {0, 1}


def _jobs(platform) -> int:  # type: ignore[no-untyped-def]
    with platform.store.read() as s:
        return int(s.scalar(select(func.count()).select_from(Job).where(Job.kind == "transform")))


def test_bad_requests_are_refused_and_queue_nothing(platform, admin, http, model_txt) -> None:
    admin.orgs.create("lab")
    project = admin.projects.create("lab", "bad")
    auth = _auth(admin)
    model = http.post(f"/api/v1/projects/{project.id}/models", json={"name": "bare"},
                      headers=auth).json()  # fmt: skip
    r = http.post(f"/api/v1/models/{model['id']}/versions/upload",
                  params={"filename": "model.txt"}, content=model_txt.read_bytes(),
                  headers=auth)  # fmt: skip
    assert r.status_code == 201, r.text
    base = f"/api/v1/models/{model['id']}/versions"
    cases = [
        (1, {"kind": "prune"}, 422, "kind"),
        (1, {"kind": "quantize"}, 422, "int8 quantisation applies to the weight matrices"),
        (1, {"kind": "distill"}, 422, "has no task to take training rows from"),
        (1, {"kind": "distill", "params": {"task_id": 999999}}, 404, "task not found"),
        (1, {"kind": "onnx", "params": {"depth": 3}}, 422, "unknown parameter 'depth'"),
        (1, {"kind": "distill", "params": {"student": "xgboost", "task_id": 1}}, 422,
         "unknown student"),
        (1, {"kind": "distill", "params": {"student_params": {"trees": 3}, "task_id": 1}}, 422,
         "trees"),
        (7, {"kind": "onnx"}, 404, "has no version 7"),
    ]  # fmt: skip
    for version, body, status, message in cases:
        r = http.post(f"{base}/{version}/transforms", json=body, headers=auth)
        assert r.status_code == status and message in r.text, (body, r.text)
    assert _jobs(platform) == 0
    assert http.get("/api/v1/transforms/999999", headers=auth).status_code == 404


def test_export_of_an_uploaded_booster_reports_size_and_latency(
    platform, admin, http, model_txt, booster, cancer
) -> None:  # type: ignore[no-untyped-def]
    admin.orgs.create("lab")
    project = admin.projects.create("lab", "bare")
    auth = _auth(admin)
    model = http.post(f"/api/v1/projects/{project.id}/models", json={"name": "bare"},
                      headers=auth).json()  # fmt: skip
    r = http.post(f"/api/v1/models/{model['id']}/versions/upload",
                  params={"filename": "model.txt"}, content=model_txt.read_bytes(),
                  headers=auth)  # fmt: skip
    assert r.status_code == 201, r.text
    job = admin.models.transform("bare@1", "onnx")  # through the SDK
    assert job.state == "queued" and job.kind == "onnx"
    work(platform, ["transform"])
    version = job.wait(timeout=30)
    assert version.flavor == "onnx" and version.version == 2
    onnx = version.to_dict()
    report = onnx["transform"]["report"]
    assert report["metric"] is None and report["rows"] == "generated"
    assert report["max_abs_diff"] < 1e-4 and report["latency_per_row_s"]["after"] > 0
    # Served as the booster is: P(positive) per row, and no probabilities.
    X = cancer[0][:25]
    answer = _deploy_and_predict(http, auth, project.id, onnx, "bare-onnx", {"data": X.tolist()})
    np.testing.assert_allclose(answer["predictions"], booster.predict(X), atol=1e-6)
    assert "probabilities" not in answer


def test_a_dnn_quantises_to_int8_and_trees_do_not(platform, admin, http, model_txt) -> None:
    load_demo(platform)
    task = next(t for t in admin.tasks.list(project="demo/benchmarks") if t.name == "breast_cancer")
    auth = _auth(admin)
    run = http.post(f"/api/v1/tasks/{task.id}/runs",
                    json={"algorithm": "dnn", "params": {"epochs": 5, "width": 64}},
                    headers=auth)  # fmt: skip
    assert run.status_code == 201, run.text
    work(platform, ["run"])
    project_id = http.get(f"/api/v1/tasks/{task.id}", headers=auth).json()["project_id"]
    model = admin.models.create(project_id, "net")
    parent = admin.models.register_run(model, run.json()["id"])
    version = admin.models.transform("net@1", "quantize")
    work(platform, ["transform"])
    int8 = version.wait(timeout=30)
    assert int8.flavor == "onnx" and int8.lineage["parent_id"] == parent.id
    report = int8.transform["report"]
    assert report["size_bytes"]["after"] < report["size_bytes"]["before"]
    assert abs(report["metric"]["change"]) < 0.05 and report["max_abs_diff"] < 0.1
    probabilities = admin.models.load("net@2").predictor.predict(
        admin.datasets.to_pandas(task.dataset_id)[int8.input_names].head(5).to_numpy()
    )
    assert probabilities.probabilities.shape == (5, 2)

    # An ONNX export of trees has no weight matrices: refused before anything is queued.
    r = http.post(f"/api/v1/models/{model.id}/versions/1/transforms",
                  json={"kind": "distill", "params": {"student": "mlp"}}, headers=auth)  # fmt: skip
    assert r.status_code == 201, r.text  # a dnn teacher distils into an mlp (queued only)
    trees = http.post(f"/api/v1/projects/{project_id}/models", json={"name": "trees"},
                      headers=auth).json()  # fmt: skip
    http.post(f"/api/v1/models/{trees['id']}/versions/upload", params={"filename": "model.txt"},
              content=model_txt.read_bytes(), headers=auth)  # fmt: skip
    for body in ({"kind": "quantize"}, {"kind": "quantize", "params": {"per_channel": True}}):
        r = http.post(f"/api/v1/models/{trees['id']}/versions/1/transforms", json=body,
                      headers=auth)  # fmt: skip
        assert r.status_code == 422 and "lightgbm" in r.text, r.text
