"""Endpoints through the API: deploy, call, route, limit, account, and refuse bad input."""

from __future__ import annotations

import io
import time
import warnings
import zipfile

import lightgbm as lgb
import numpy as np
import orjson
import pandas as pd
import pytest

from tests.api.conftest import make_user
from tests.models.conftest import mlflow_zip
from tests.serving.conftest import deploy_upload

N = 30
NAMES = [f"f{i}" for i in range(N)]


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _booster(X, y, rounds: int) -> lgb.Booster:  # type: ignore[no-untyped-def]
    params = {"objective": "binary", "num_leaves": 7, "verbose": -1, "seed": 1, "num_threads": 1}
    return lgb.train(params, lgb.Dataset(X, y, feature_name=NAMES), num_boost_round=rounds)


@pytest.fixture
def svc(admin, http, cancer):  # type: ignore[no-untyped-def]
    """A project with a model of two versions, an owner, and a consumer organisation."""
    X, y = cancer
    owner = make_user(admin, http, "olga")
    owner.orgs.create("lab")
    project = owner.projects.create("lab", "study")
    model = http.post(
        f"/api/v1/projects/{project.id}/models", json={"name": "cancer"}, headers=_auth(owner.token)
    ).json()
    boosters = [_booster(X, y, 5), _booster(X, y, 40)]
    versions = []
    for b in boosters:
        r = http.post(
            f"/api/v1/models/{model['id']}/versions/upload",
            params={"filename": "model.txt"},
            content=b.model_to_string().encode(),
            headers=_auth(owner.token),
        )
        assert r.status_code == 201, r.text
        versions.append(r.json()["id"])
    client = make_user(admin, http, "cleo")
    client.orgs.create("clinic")
    return {
        "owner": owner,
        "project": project,
        "versions": versions,
        "boosters": boosters,
        "X": X,
        "client": client,
    }


def _create(http, svc, name="cancer", **extra):  # type: ignore[no-untyped-def]
    body = {"name": name, "targets": [{"version_id": svc["versions"][0], "weight": 100}], **extra}
    r = http.post(
        f"/api/v1/projects/{svc['project'].id}/endpoints",
        json=body,
        headers=_auth(svc["owner"].token),
    )
    assert r.status_code == 201, r.text
    return r.json()


def _predict(http, token, body, name="cancer"):  # type: ignore[no-untyped-def]
    return http.post(
        f"/api/v1/endpoints/{name}/predict", json=body, headers=_auth(token) if token else {}
    )


def test_predictions_match_the_model_in_every_body_format(http, svc) -> None:
    _create(http, svc)
    X, booster, token = svc["X"][:20], svc["boosters"][0], svc["owner"].token
    expected = booster.predict(X)
    bodies = [
        {"data": X.tolist()},
        {"columns": NAMES, "data": X.tolist()},
        {"dataframe_split": {"columns": NAMES[::-1], "data": X[:, ::-1].tolist()}},
        {"records": [dict(zip(NAMES, row, strict=True)) for row in X.tolist()]},
        {"dataframe_records": [dict(zip(NAMES, row, strict=True)) for row in X.tolist()]},
    ]
    for body in bodies:
        r = _predict(http, token, body)
        assert r.status_code == 200, r.text
        out = r.json()
        np.testing.assert_allclose(out["predictions"], expected, atol=1e-12)
        assert out["version"] == svc["versions"][0] and out["request_id"]
    # served on ONNX Runtime (the onnx extra is installed here), with the booster's answers
    assert http.app.state.serving.predictors[svc["versions"][0]].accelerated


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"data": []}, "the batch is empty"),
        ({"columns": NAMES[:-1], "data": [[1.0] * 29]}, "missing column 'f29'"),
        ({"columns": [*NAMES, "zz"], "data": [[1.0] * 31]}, "unknown column 'zz'"),
        ({"data": [[1.0] * 30, [1.0] * 29]}, "row 1 has 29 values; expected 30"),
        ({"data": [[1.0] * 29 + ["x"]]}, "row 0, column 'f29': expected a number"),
        ({"records": [{"f0": 1}]}, "record 0 lacks column 'f1'"),
        ({"rows": []}, "the body needs 'records'"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_input_is_named(http, svc, body, message) -> None:  # type: ignore[no-untyped-def]
    _create(http, svc)
    r = _predict(http, svc["owner"].token, body)
    assert r.status_code == 422 and message in r.json()["error"]["message"], r.text


def test_invalid_json_row_limits_and_unknown_endpoints(http, svc) -> None:
    _create(http, svc, limits={"max_rows": 10})
    token = svc["owner"].token
    r = http.post("/api/v1/endpoints/cancer/predict", content=b"{nope", headers=_auth(token))
    assert r.status_code == 422 and "not valid JSON" in r.json()["error"]["message"]
    r = _predict(http, token, {"data": [[0.0] * 30] * 11})
    assert r.status_code == 422 and "the limit is 10" in r.json()["error"]["message"]
    assert _predict(http, token, {"data": [[0.0] * 30]}, name="nothing").status_code == 404


def test_bad_deployments_are_refused(http, svc, booster, cancer) -> None:  # type: ignore[no-untyped-def]
    v1, v2 = svc["versions"]
    base = f"/api/v1/projects/{svc['project'].id}/endpoints"
    auth = _auth(svc["owner"].token)
    cases = [
        ([{"version_id": v1, "weight": 60}, {"version_id": v2, "weight": 30}], "100"),
        ([{"version_id": v1, "weight": 100, "shadow": True}], "not only shadows"),
        ([{"version_id": v1, "weight": 100}, {"version_id": v1}], "appears twice"),
        ([{"version_id": 99999, "weight": 100}], "not found"),
    ]
    for targets, message in cases:
        r = http.post(base, json={"name": "bad", "targets": targets}, headers=auth)
        assert r.status_code in (404, 422) and message in r.json()["error"]["message"], r.text
    _create(http, svc)
    # a version reading other columns does not fit the endpoint
    X, y = cancer
    other = lgb.train(
        {"objective": "binary", "verbose": -1},
        lgb.Dataset(X[:, :5], y, feature_name=NAMES[:5]),
        num_boost_round=2,
    )
    model = svc["owner"]._http.get("/models", q="cancer")["items"][0]
    r = http.post(
        f"/api/v1/models/{model['id']}/versions/upload",
        params={"filename": "model.txt"},
        content=other.model_to_string().encode(),
        headers=auth,
    )
    r = http.put(
        "/api/v1/endpoints/cancer/deployment",
        json={"targets": [{"version_id": r.json()["id"], "weight": 100}]},
        headers=auth,
    )
    assert r.status_code == 422 and "does not fit the endpoint's signature" in r.text


def test_switching_and_canary_split(http, svc) -> None:
    _create(http, svc)
    v1, v2 = svc["versions"]
    auth = _auth(svc["owner"].token)
    r = http.put(
        "/api/v1/endpoints/cancer/deployment",
        json={"targets": [{"version_id": v1, "weight": 80}, {"version_id": v2, "weight": 20}]},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    seen = [
        _predict(http, svc["owner"].token, {"data": [[0.0] * 30]}).json()["version"]
        for _ in range(1000)
    ]
    share = seen.count(v2) / len(seen)
    assert abs(share - 0.2) < 0.05, share


def test_shadows_get_copies_and_answers_are_never_theirs(http, svc, platform) -> None:
    v1, v2 = svc["versions"]
    _create(http, svc)
    auth = _auth(svc["owner"].token)
    http.put(
        "/api/v1/endpoints/cancer/deployment",
        json={"targets": [{"version_id": v1, "weight": 100}, {"version_id": v2, "shadow": True}]},
        headers=auth,
    )
    for _ in range(20):
        assert (
            _predict(http, svc["owner"].token, {"data": svc["X"][:5].tolist()}).json()["version"]
            == v1
        )
    http.app.state.serving.flush()
    stats = http.get("/api/v1/endpoints/cancer/stats", headers=auth).json()
    shadow = [s["state"] for s in stats if s["version_id"] == v2]
    assert shadow and shadow[0]["shadow_rows"] == 100 and shadow[0]["shadow_disagree"] > 0


def test_consumers_call_with_predict_tokens_and_are_rate_limited(http, svc, admin) -> None:
    _create(http, svc, audience="consumers")
    auth = _auth(svc["owner"].token)
    client = svc["client"]
    token = client._http.post("/tokens", json={"name": "svc", "scopes": ["predict"]})["token"]
    body = {"data": [[0.0] * 30]}
    assert _predict(http, token, body).status_code == 404  # not a consumer yet
    r = http.put(
        "/api/v1/endpoints/cancer/consumers/clinic", json={"rate_per_minute": 5}, headers=auth
    )
    assert r.status_code == 200, r.text
    codes = [_predict(http, token, body).status_code for _ in range(7)]
    assert codes[:5] == [200] * 5 and codes[5] == 429
    r = _predict(http, token, body)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert _predict(http, None, body).status_code == 404  # anonymous: not for them
    http.app.state.serving.flush()
    usage = http.get("/api/v1/endpoints/cancer/usage", headers=auth).json()
    cleo = next(u for u in usage if u["consumer"] == "cleo")
    assert (cleo["requests"], cleo["rows"], cleo["errors"], cleo["limited"]) == (8, 5, 3, 3)
    r = http.get("/api/v1/endpoints/cancer/usage", headers=_auth(token))
    assert r.status_code == 404  # consumers do not see the endpoint's books


def test_replicas_share_a_consumer_s_rate_limit(http, svc, platform) -> None:
    """Each replica pays for what the others admitted (a sync later): together they admit
    the consumer's limit, not a limit each."""
    from openmaas.serving.runtime import ServingRuntime

    _create(http, svc, audience="consumers")
    token = svc["client"]._http.post("/tokens", json={"name": "t", "scopes": ["predict"]})["token"]
    r = http.put(
        "/api/v1/endpoints/cancer/consumers/clinic",
        json={"rate_per_minute": 10},
        headers=_auth(svc["owner"].token),
    )
    assert r.status_code == 200, r.text
    a, b = http.app.state.serving, ServingRuntime(platform)
    b.sync()
    body = {"data": [[0.0] * 30]}

    def on_b() -> int:
        return b.predict("cancer", f"Bearer {token}", orjson.dumps(body)).status

    try:
        assert on_b() == 200 and _predict(http, token, body).status_code == 200  # 9 left each
        a.flush(), b.flush()  # both know the totals from here on
        assert [_predict(http, token, body).status_code for _ in range(6)] == [200] * 6
        a.flush(), b.flush()  # a pays for b's first (2 left), b for a's six (3 left)
        assert [on_b() for _ in range(5)] == [200, 200, 200, 429, 429]
        b.flush(), a.flush()  # a pays for b's three: it owes one
        assert _predict(http, token, body).status_code == 429
        usage = http.get("/api/v1/endpoints/cancer/usage", headers=_auth(svc["owner"].token))
        cleo = next(u for u in usage.json() if u["consumer"] == "cleo")
        assert (cleo["requests"], cleo["limited"]) == (13, 2)  # a's last is not synced yet
    finally:
        b.stop()


def test_a_revoked_token_stops_working_within_seconds(http, svc) -> None:
    _create(http, svc)
    owner = svc["owner"]
    made = owner._http.post("/tokens", json={"name": "temp", "scopes": ["predict"]})
    body = {"data": [[0.0] * 30]}
    assert _predict(http, made["token"], body).status_code == 200
    owner._http.delete(f"/tokens/{made['id']}")
    start = time.monotonic()
    while _predict(http, made["token"], body).status_code == 200:
        assert time.monotonic() - start < 5, "the revoked token still works"
        time.sleep(0.1)
    assert _predict(http, made["token"], body).status_code == 401


def test_bandit_routing_learns_the_better_version(http, svc) -> None:
    v1, v2 = svc["versions"]
    _create(http, svc)
    auth = _auth(svc["owner"].token)
    r = http.put(
        "/api/v1/endpoints/cancer/deployment",
        json={
            "targets": [{"version_id": v1}, {"version_id": v2}],
            "routing": {"mode": "bandit", "policy": "thompson"},
        },
        headers=auth,
    )
    assert r.status_code == 200, r.text
    runtime = http.app.state.serving
    runtime.sync()
    runtime._rng = np.random.default_rng(7)
    rewards = np.random.default_rng(11)
    p = {v1: 0.4, v2: 0.6}
    body = b'{"data": [[0.0' + b", 0.0" * 29 + b"]]}"
    chosen = []
    for i in range(3000):
        out = runtime.predict("cancer", auth["Authorization"], body)
        assert out.status == 200, out.body
        answer = orjson.loads(out.body)
        chosen.append(answer["version"])
        reward = float(rewards.random() < p[answer["version"]])
        fb = runtime.feedback(
            "cancer",
            auth["Authorization"],
            orjson.dumps({"request_id": answer["request_id"], "reward": reward}),
        )
        assert fb.status == 200
        if i % 100 == 99:
            runtime.sync()  # replicas sync about every second
    assert chosen[-1000:].count(v2) >= 750
    r = http.post("/api/v1/endpoints/cancer/feedback", json={"request_id": "nope"}, headers=auth)
    assert r.status_code == 422


def test_mlflow_model_serves_the_same_predictions(http, svc, booster, cancer) -> None:  # type: ignore[no-untyped-def]
    deploy_upload(
        http, svc["owner"].token, svc["project"].id, "imported", "m.zip", mlflow_zip(booster)
    )
    X = cancer[0][:50]
    body = {"dataframe_split": {"columns": NAMES, "data": X.tolist()}}
    out = _predict(http, svc["owner"].token, body, name="imported").json()
    np.testing.assert_allclose(out["predictions"], booster.predict(X), atol=1e-12)


def test_a_folder_mlflow_wrote_serves_what_mlflow_serves(
    http, svc, booster, cancer, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """The real MLflow (mlflow-skinny, a dev dependency) writes the model folder and
    predicts with its pyfunc loader; the endpoint answers the same."""
    with warnings.catch_warnings():  # MLflow warns about its own type hints on import
        warnings.simplefilter("ignore")
        mlflow_lightgbm = pytest.importorskip("mlflow.lightgbm")
        pyfunc = pytest.importorskip("mlflow.pyfunc")
        from mlflow.models import infer_signature

        frame = pd.DataFrame(cancer[0][:50], columns=NAMES)
        folder = tmp_path / "mlflow_model"
        mlflow_lightgbm.save_model(
            booster, str(folder), signature=infer_signature(frame), pip_requirements=[]
        )
        expected = np.asarray(pyfunc.load_model(str(folder)).predict(frame))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for path in folder.rglob("*"):
            zf.write(path, f"mlflow_model/{path.relative_to(folder)}")
    v = deploy_upload(
        http, svc["owner"].token, svc["project"].id, "from-mlflow", "mlflow_model.zip",
        archive.getvalue(),
    )  # fmt: skip
    assert (v["flavor"], v["source"]) == ("lightgbm", "mlflow")
    body = {"dataframe_split": frame.to_dict(orient="split", index=False)}  # MLflow's own body
    out = _predict(http, svc["owner"].token, body, name="from-mlflow")
    assert out.status_code == 200, out.text
    np.testing.assert_allclose(out.json()["predictions"], expected, atol=1e-12)


def test_text_class_labels_are_answered(http, svc, cancer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    from openmaas.ml.catalog.persist import dump_skops

    X, y = cancer
    labels = np.where(y == 1, "benign", "malignant")
    est = LogisticRegression(max_iter=2000).fit(X[:, :4], labels)
    dump_skops(est, tmp_path / "model.skops")
    auth = _auth(svc["owner"].token)
    model = http.post(
        f"/api/v1/projects/{svc['project'].id}/models", json={"name": "labels"}, headers=auth
    ).json()
    sig = '{"inputs": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]}'
    v = http.post(
        f"/api/v1/models/{model['id']}/versions/upload",
        params={"filename": "model.skops", "signature": sig},
        content=(tmp_path / "model.skops").read_bytes(),
        headers=auth,
    )
    assert v.status_code == 201, v.text
    r = http.post(
        f"/api/v1/projects/{svc['project'].id}/endpoints",
        json={"name": "labels", "targets": [{"version_id": v.json()["id"], "weight": 100}]},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    out = _predict(http, svc["owner"].token, {"data": X[:5, :4].tolist()}, name="labels").json()
    assert out["predictions"] == est.predict(X[:5, :4]).tolist()
    assert out["classes"] == ["benign", "malignant"] and len(out["probabilities"]) == 5
    bad = http.post(
        "/api/v1/endpoints/labels/feedback",
        json={"request_id": out["request_id"], "reward": 1.0, "label": {"x": 1}},
        headers=auth,
    )
    assert bad.status_code == 422
