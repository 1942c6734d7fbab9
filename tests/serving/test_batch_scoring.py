"""Batch scoring through the API: jobs run by a worker, result files that match the model."""

from __future__ import annotations

import io

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from openmaas.domain.blobs import referenced_digests
from openmaas.jobs.worker import Worker
from openmaas.store.metadata.tables import Job
from tests.api.conftest import make_user

N = 30
NAMES = [f"f{i}" for i in range(N)]


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _train(X: np.ndarray, y: np.ndarray, **params: object) -> lgb.Booster:
    base = {"objective": "binary", "num_leaves": 7, "verbose": -1, "seed": 1, "num_threads": 1}
    return lgb.train({**base, **params}, lgb.Dataset(X, y, feature_name=NAMES), num_boost_round=8)


def work(platform) -> None:  # type: ignore[no-untyped-def]
    import openmaas.jobs.handlers.score  # noqa: F401  (registers the "score" job kind)

    Worker(platform, kinds=["score"], concurrency=1, poll_interval=0.05).run_until_idle(timeout=300)


def _jobs(platform) -> int:  # type: ignore[no-untyped-def]
    with platform.store.read() as s:
        return int(s.scalar(select(func.count()).select_from(Job)) or 0)


@pytest.fixture
def lab(admin, http, cancer):  # type: ignore[no-untyped-def]
    """A project with a binary and a multiclass model, a dataset to score and a viewer."""
    X, y = cancer
    owner = make_user(admin, http, "olga")
    owner.orgs.create("lab")
    project = owner.projects.create("lab", "study")
    auth = _auth(owner.token)
    y3 = np.digitize(X[:, 0], np.quantile(X[:, 0], [1 / 3, 2 / 3]))
    boosters = {
        "binary": _train(X, y),
        "multi": _train(X, y3, objective="multiclass", num_class=3),
    }
    ids = {}
    for name, booster in boosters.items():
        model = http.post(
            f"/api/v1/projects/{project.id}/models", json={"name": name}, headers=auth
        )
        assert model.status_code == 201, model.text
        r = http.post(
            f"/api/v1/models/{model.json()['id']}/versions/upload",
            params={"filename": "model.txt"},
            content=booster.model_to_string().encode(),
            headers=auth,
        )
        assert r.status_code == 201, r.text
        ids[name] = model.json()["id"]
    frame = pd.DataFrame(X, columns=NAMES).assign(label=y)
    r = http.post(
        f"/api/v1/projects/{project.id}/datasets",
        params={"name": "cancer", "format": "csv"},
        content=frame.to_csv(index=False).encode(),
        headers=auth,
    )
    assert r.status_code == 201, r.text
    viewer = make_user(admin, http, "vera")
    owner.orgs.set_member("lab", "vera", "viewer")
    return {
        "owner": owner, "auth": auth, "project": project, "models": ids, "boosters": boosters,
        "dataset": r.json()["dataset"]["id"], "X": X, "viewer": viewer,
    }  # fmt: skip


def _result(http, job_id: int, auth, fmt: str = "parquet") -> pd.DataFrame:  # type: ignore[no-untyped-def]
    r = http.get(f"/api/v1/scoring/{job_id}/result", params={"format": fmt}, headers=auth)
    assert r.status_code == 200, r.text
    if fmt == "csv":
        assert r.headers["content-type"].startswith("text/csv")
        return pd.read_csv(io.BytesIO(r.content))
    return pd.read_parquet(io.BytesIO(r.content))


def test_scoring_a_dataset_and_an_upload_writes_the_models_predictions(platform, http, lab) -> None:
    X, auth, models = lab["X"], lab["auth"], lab["models"]
    base = f"/api/v1/models/{models['binary']}/versions/1/score"
    by_dataset = http.post(base, json={"dataset_id": lab["dataset"]}, headers=auth)
    assert by_dataset.status_code == 201, by_dataset.text
    job = by_dataset.json()
    assert job["state"] == "queued" and job["result"] is None
    assert job["input"]["source"] == "dataset" and job["input"]["dataset_version"] == 1
    upload = pd.DataFrame(X[:57], columns=NAMES).assign(id=range(57))[["id", *reversed(NAMES)]]
    by_upload = http.post(
        f"/api/v1/models/{models['multi']}/versions/1/score/upload",
        params={"filename": "rows.csv"},
        content=upload.to_csv(index=False).encode(),
        headers={**auth, "Content-Type": "text/csv"},
    )
    assert by_upload.status_code == 201, by_upload.text
    early = http.get(f"/api/v1/scoring/{by_upload.json()['id']}/result", headers=auth)
    assert early.status_code == 409
    assert early.json()["error"]["message"] == (
        f"scoring job {by_upload.json()['id']} has no result: it is still queued"
    )

    work(platform)

    done = http.get(f"/api/v1/scoring/{job['id']}", headers=auth).json()
    assert done["state"] == "succeeded", done
    assert done["result"]["rows"] == len(X) and done["result"]["seconds"] >= 0
    result = _result(http, job["id"], auth)
    assert list(result.columns) == ["row", "prediction"]
    assert result["row"].tolist() == list(range(len(X)))
    np.testing.assert_allclose(result["prediction"], lab["boosters"]["binary"].predict(X))
    as_csv = _result(http, job["id"], auth, "csv")
    np.testing.assert_allclose(as_csv["prediction"], result["prediction"])

    multi = http.get(f"/api/v1/scoring/{by_upload.json()['id']}", headers=auth).json()
    assert multi["state"] == "succeeded", multi
    assert multi["input"] == {"source": "upload", "format": "csv", "filename": "rows.csv",
                              "bytes": len(upload.to_csv(index=False).encode())}  # fmt: skip
    assert multi["result"]["classes"] == [0, 1, 2]
    result = _result(http, by_upload.json()["id"], auth)
    assert list(result.columns) == ["row", "prediction", "proba_0", "proba_1", "proba_2"]
    proba = lab["boosters"]["multi"].predict(X[:57])
    np.testing.assert_allclose(result[["proba_0", "proba_1", "proba_2"]], proba)
    assert result["prediction"].tolist() == proba.argmax(axis=1).tolist()

    kept = referenced_digests(platform)
    assert done["result"]["digest"] in kept and multi["result"]["digest"] in kept


def test_an_endpoint_scores_with_its_heaviest_version_for_its_callers(
    platform, admin, http, lab
) -> None:
    auth, model_id = lab["auth"], lab["models"]["binary"]
    X = lab["X"]
    booster = _train(X, (X[:, 1] > np.median(X[:, 1])).astype(int))
    second = http.post(
        f"/api/v1/models/{model_id}/versions/upload",
        params={"filename": "model.txt"},
        content=booster.model_to_string().encode(),
        headers=auth,
    )
    assert second.status_code == 201, second.text
    first_id = http.get(f"/api/v1/models/{model_id}/versions/1", headers=auth).json()["id"]
    targets = [{"version_id": first_id, "weight": 10},
               {"version_id": second.json()["id"], "weight": 90}]  # fmt: skip
    r = http.post(
        f"/api/v1/projects/{lab['project'].id}/endpoints",
        json={"name": "cancer", "targets": targets},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    viewer = _auth(lab["viewer"].token)  # viewers may call the endpoint, so score with it
    rows = pd.DataFrame(X[:20], columns=NAMES).to_json(orient="records", lines=True)
    job = http.post(
        "/api/v1/endpoints/cancer/score/upload",
        params={"format": "jsonl"},
        content=rows.encode(),
        headers=viewer,
    )
    assert job.status_code == 201, job.text
    assert job.json()["version"] == 2 and job.json()["endpoint"] == "cancer"
    outsider = make_user(admin, http, "otto")
    hidden = http.post(
        "/api/v1/endpoints/cancer/score", json={"dataset_id": lab["dataset"]},
        headers=_auth(outsider.token),
    )  # fmt: skip
    assert hidden.status_code == 404
    words = pd.DataFrame(X[:5], columns=NAMES).assign(f7="seven").to_csv(index=False)
    doomed = http.post(
        "/api/v1/endpoints/cancer/score/upload", params={"format": "csv"},
        content=words.encode(), headers=viewer,
    )  # fmt: skip
    assert doomed.status_code == 201, doomed.text  # the names fit; the values are read later

    work(platform)

    failed = http.get(f"/api/v1/scoring/{doomed.json()['id']}", headers=viewer).json()
    assert (failed["state"], failed["error_code"]) == ("failed", "invalid_input")
    assert failed["error"] == "column 'f7' holds string, but the model reads numbers"
    assert http.get(f"/api/v1/scoring/{doomed.json()['id']}/result", headers=viewer).json()[
        "error"
    ]["message"] == (
        f"scoring job {doomed.json()['id']} has no result: it failed ({failed['error']})"
    )

    assert http.get(f"/api/v1/scoring/{job.json()['id']}", headers=viewer).json()["state"] == (
        "succeeded"
    )
    result = _result(http, job.json()["id"], viewer)
    np.testing.assert_allclose(result["prediction"], booster.predict(X[:20]))
    other = http.get(f"/api/v1/scoring/{job.json()['id']}", headers=_auth(outsider.token))
    assert other.status_code == 404  # a job is its creator's and the maintainers'
    # the endpoint's usage counts the successful job for its caller: one request, 20 rows
    usage = http.get("/api/v1/endpoints/cancer/usage", headers=auth).json()
    mine = [u for u in usage if u["consumer"] == "vera"]
    assert [(u["requests"], u["rows"], u["errors"]) for u in mine] == [(1, 20, 0)]


def test_bad_requests_are_refused_and_queue_nothing(platform, http, lab) -> None:
    auth, models = lab["auth"], lab["models"]
    base = f"/api/v1/models/{models['binary']}/versions"
    narrow = pd.DataFrame(lab["X"][:5, :3], columns=NAMES[:3]).to_csv(index=False).encode()
    r = http.post(
        f"/api/v1/projects/{lab['project'].id}/datasets",
        params={"name": "narrow", "format": "csv"}, content=narrow, headers=auth,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    narrow_id = r.json()["dataset"]["id"]
    csv = {**auth, "Content-Type": "text/csv"}
    cases = [
        (http.post(f"{base}/9/score", json={"dataset_id": lab["dataset"]}, headers=auth),
         404, "model 'binary' has no version 9"),
        (http.post(f"{base}/1/score", json={"dataset_id": 99999}, headers=auth),
         404, "dataset not found"),
        (http.post(f"{base}/1/score", json={"dataset_id": lab["dataset"], "version": 4},
                   headers=auth), 404, "dataset 'cancer' has no version 4"),
        (http.post(f"{base}/1/score", json={"dataset_id": narrow_id}, headers=auth),
         422, "the input lacks column(s) the model reads: 'f3', 'f4'"),
        (http.post(f"{base}/1/score/upload", content=narrow, headers=csv),
         422, "the input lacks column(s) the model reads: 'f3', 'f4'"),
        (http.post(f"{base}/1/score/upload", content=b"f0,f1\n", headers=csv),
         422, "the file has a header but no data rows"),
        (http.post(f"{base}/1/score/upload", content=narrow, headers=auth),
         422, "say what the file is"),
        (http.post(f"{base}/1/score", json={"dataset_id": lab["dataset"]},
                   headers=_auth(lab["viewer"].token)), 403, "create on this model needs"),
        (http.post("/api/v1/endpoints/nope/score", json={"dataset_id": lab["dataset"]},
                   headers=auth), 404, "endpoint 'nope' not found"),
        (http.get("/api/v1/scoring/12345", headers=auth), 404, "scoring job not found"),
    ]  # fmt: skip
    for response, status, message in cases:
        assert response.status_code == status, response.text
        assert message in response.json()["error"]["message"], response.text
    assert _jobs(platform) == 0
