"""``client.endpoints`` on the in-process app: deploy a model, call it, route, share, account."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine
from starlette.testclient import TestClient

from openmaas.client import Client, Endpoint, ModelVersion, Prediction
from openmaas.client.endpoints import request_body
from openmaas.errors import Conflict, InvalidInput, NotFound, RateLimited
from tests.api.conftest import make_user
from tests.conftest import sdk
from tests.models import conftest as model_files

# Model files made on the spot (tests/models/conftest.py).
booster, cancer, model_txt = model_files.booster, model_files.cancer, model_files.model_txt
FEATURES = [f"f{i}" for i in range(30)]


@pytest.fixture
def owner(admin: Client, http: TestClient) -> Client:
    owner = make_user(admin, http, "olga")
    owner.orgs.create("lab")
    owner.projects.create("lab", "study")
    return owner


@pytest.fixture
def versions(owner: Client, booster: lgb.Booster, cancer, tmp_path) -> list[ModelVersion]:  # type: ignore[no-untyped-def]
    """Two versions of ``lab/study/cancer``: the session's booster and a smaller one."""
    X, y = cancer
    owner.models.create("lab/study", "cancer")
    small = lgb.train(
        {"objective": "binary", "num_leaves": 4, "verbose": -1, "seed": 2, "num_threads": 1},
        lgb.Dataset(X, y, feature_name=FEATURES),
        num_boost_round=3,
    )
    small.save_model(str(tmp_path / "small.txt"))
    booster.save_model(str(tmp_path / "model.txt"))
    return [
        owner.models.upload("cancer", tmp_path / "model.txt"),
        owner.models.upload("cancer", tmp_path / "small.txt"),
    ]


def frame(X: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(X, columns=FEATURES)


def test_a_dataframe_gets_the_boosters_predictions(
    owner: Client, versions: list[ModelVersion], booster: lgb.Booster, cancer
) -> None:  # type: ignore[no-untyped-def]
    v1, _ = versions
    ep = owner.endpoints.create(
        "lab/study", "cancer", "cancer@1", description="who is at risk", limits={"max_rows": 500}
    )
    assert isinstance(ep, Endpoint)
    assert (ep.name, ep.project, ep.audience, ep.routing) == (
        "cancer", "lab/study", "project", {"mode": "split"}
    )  # fmt: skip
    assert [(t["model"], t["version"], t["weight"]) for t in ep.live] == [("cancer", 1, 100)]
    assert ep.url == "/api/v1/endpoints/cancer/predict" and ep.limits["max_rows"] == 500

    X = cancer[0][:40].copy()
    X[3, 7] = np.nan  # missing values travel as null; the booster handles them
    df = frame(X)[FEATURES[::-1]]  # by column name: their order does not matter
    out = owner.endpoints.predict("cancer", df)
    assert isinstance(out, Prediction) and len(out) == 40
    np.testing.assert_allclose(out.predictions, booster.predict(X), atol=1e-12)
    assert out.version == v1.id and out.request_id and out.probabilities is None

    records = frame(X[:5]).to_dict("records")
    for data in (records, X[:5], X[:5].tolist()):
        again = owner.endpoints.predict("cancer", data)
        np.testing.assert_allclose(again.predictions, booster.predict(X[:5]), atol=1e-12)
    assert list(owner.endpoints.predict("cancer", X[:3]).to_pandas().columns) == ["prediction"]


def test_a_classifier_answers_probabilities_and_learns_its_quality(
    owner: Client, http: TestClient, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    X, y = load_wine(return_X_y=True)
    names = [f"w{i}" for i in range(X.shape[1])]
    wine = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1},
        lgb.Dataset(X, y, feature_name=names),
        num_boost_round=5,
    )
    wine.save_model(str(tmp_path / "wine.txt"))
    owner.models.create("lab/study", "wine")
    version = owner.models.upload("wine", tmp_path / "wine.txt")
    owner.endpoints.create("lab/study", "wine", version)
    out = owner.endpoints.predict("wine", pd.DataFrame(X[:10], columns=names))
    expected = wine.predict(X[:10])
    np.testing.assert_allclose(out.probabilities, expected, atol=1e-12)
    assert out.classes == [0, 1, 2]
    np.testing.assert_array_equal(out.predictions, expected.argmax(axis=1))
    assert list(out.to_pandas().columns) == ["prediction", "proba_0", "proba_1", "proba_2"]

    owner.endpoints.feedback("wine", out.request_id, label=y[:10])  # one label per row
    http.app.state.serving.flush()  # type: ignore[attr-defined]
    (scored,) = owner.endpoints.quality("wine").versions
    assert (scored["kind"], scored["overall"]["rows"]) == ("classification", 10)
    hits = float((expected.argmax(axis=1) == y[:10]).mean())
    assert scored["overall"]["accuracy"] == pytest.approx(hits)


def test_canary_then_full_switch(owner: Client, versions: list[ModelVersion]) -> None:
    v1, v2 = versions
    created = owner.endpoints.create("lab/study", "cancer", v1)
    ep = owner.endpoints.canary("cancer", "cancer@1", "lab/study/cancer@2", percent=10)
    assert [(t["version"], t["weight"]) for t in ep.targets] == [(1, 90), (2, 10)]
    assert ep.generation == created.generation + 1  # what replicas poll to switch
    row = np.zeros((1, 30))
    seen = [owner.endpoints.predict("cancer", row).version for _ in range(600)]
    assert abs(seen.count(v2.id) / len(seen) - 0.1) < 0.05
    assert set(seen) == {v1.id, v2.id}

    ep = owner.endpoints.deploy("cancer", [(np.int64(v2.id), 100)], shadows=[v1])
    assert [(t["version"], t["shadow"]) for t in ep.live + ep.shadows] == [(2, False), (1, True)]
    assert {owner.endpoints.predict("cancer", row).version for _ in range(20)} == {v2.id}
    with pytest.raises(InvalidInput, match="a canary takes from 1 to 99 percent, not 100"):
        owner.endpoints.canary("cancer", v1, v2, percent=100)


def test_a_consumer_calls_with_a_predict_only_token(
    admin: Client, http: TestClient, owner: Client, versions: list[ModelVersion]
) -> None:
    owner.endpoints.create("lab/study", "cancer", "cancer@1", audience="consumers")
    cleo = make_user(admin, http, "cleo")
    cleo.orgs.create("clinic")
    token = cleo.tokens.create("calls", scopes=["predict"]).token
    caller = sdk(http, token)
    row = [[0.0] * 30]
    with pytest.raises(NotFound, match=r"^endpoint not found$"):
        caller.endpoints.predict("cancer", row)  # not a consumer yet: invisible

    ep = owner.endpoints.set_consumer("cancer", "clinic", rate_per_minute=3)
    assert ep.consumers == {"clinic": 3}
    answers = [caller.endpoints.predict("cancer", row) for _ in range(3)]
    limit = r"^rate limit (of 3 requests per minute )?exceeded; retry in \d+ s$"
    with pytest.raises(RateLimited, match=limit) as limited:
        caller.endpoints.predict("cancer", row)
    assert limited.value.retry_after >= 1
    accepted = caller.endpoints.feedback("cancer", answers[0].request_id, reward=1.0, label=1)
    assert (accepted.request_id, accepted.accepted) == (answers[0].request_id, True)
    with pytest.raises(NotFound, match=r"^endpoint not found$"):  # calling is all they may
        cleo.endpoints.usage("cancer")  # consumers do not see the endpoint's books

    http.app.state.serving.flush()  # type: ignore[attr-defined]
    usage = {u.consumer: u for u in owner.endpoints.usage("cancer")}
    assert (usage["cleo"].requests, usage["cleo"].rows, usage["cleo"].errors) == (4, 3, 1)
    stats = owner.endpoints.stats("cancer")
    served = next(s.state for s in stats if s.version_id == versions[0].id)
    counts = [served[k] for k in ("requests", "rows", "errors", "feedback")]
    assert counts == [3, 3, 0, 1]
    refused = next(s.state for s in stats if s.version_id == 0)  # before a version was chosen
    assert (refused["requests"], refused["errors"]) == (2, 2)
    (scored,) = owner.endpoints.quality("cancer").versions  # the label 1 against a probability
    assert (scored["kind"], scored["overall"]["rows"]) == ("regression", 1)
    assert scored["overall"]["mae"] == pytest.approx(1 - float(answers[0].predictions[0]))
    drift = owner.endpoints.drift("cancer")  # an uploaded booster has no training data
    assert not drift.flagged and "no training dataset" in drift.versions[0]["note"]
    feedback = owner.endpoints.records("cancer", "feedback")
    assert feedback.total == 1 and feedback.items[0].consumer == "cleo"

    owner.endpoints.remove_consumer("cancer", "clinic")
    http.app.state.serving.refresh()  # type: ignore[attr-defined]
    with pytest.raises(NotFound, match=r"^endpoint not found$"):
        caller.endpoints.predict("cancer", row)


def test_settings_logs_listing_and_deletion(
    owner: Client, http: TestClient, versions: list[ModelVersion]
) -> None:
    owner.endpoints.create("lab/study", "cancer", "cancer@1", monitoring={"sample_rate": 1.0})
    ep = owner.endpoints.update("cancer", audience="public", limits={"rate_per_minute": 100})
    assert (ep.audience, ep.limits) == ("public", {"rate_per_minute": 100, "max_rows": None})
    assert ep.monitoring["sample_rate"] == 1.0
    anonymous = sdk(http, None)  # a public endpoint answers callers without a token
    out = anonymous.endpoints.predict("cancer", [[0.0] * 30])
    assert out.version == versions[0].id

    http.app.state.serving.flush()  # type: ignore[attr-defined]
    logged = owner.endpoints.records("cancer", "request")
    assert logged.total == 1
    record = logged.items[0]
    assert (record.request_id, record.consumer) == (out.request_id, "anonymous")
    assert record.body["request"] == {"data": [[0.0] * 30]}
    assert record.body["response"]["request_id"] == out.request_id

    assert [e.name for e in owner.endpoints.list(project="lab/study")] == ["cancer"]
    assert owner.endpoints.get("cancer").description == ""
    owner.endpoints.delete("cancer")
    with pytest.raises(NotFound, match="endpoint 'cancer' not found"):
        owner.endpoints.get("cancer")
    assert owner.endpoints.list().total == 0


def test_errors_carry_the_servers_message(owner: Client, versions: list[ModelVersion]) -> None:
    v1, v2 = versions
    owner.endpoints.create("lab/study", "cancer", v1)
    with pytest.raises(Conflict, match="endpoint 'cancer' already exists"):
        owner.endpoints.create("lab/study", "cancer", v1)
    with pytest.raises(InvalidInput, match="sum to 100"):
        owner.endpoints.deploy("cancer", [(v1, 60), (v2, 30)])
    with pytest.raises(NotFound, match="model 'nope' not found"):
        owner.endpoints.deploy("cancer", "nope@1")
    with pytest.raises(InvalidInput, match="missing column 'f29'"):
        owner.endpoints.predict("cancer", frame(np.zeros((2, 30))).drop(columns="f29"))
    with pytest.raises(InvalidInput, match="row 1 has 29 values; expected 30"):
        owner.endpoints.predict("cancer", [[0.0] * 30, [0.0] * 29])
    with pytest.raises(InvalidInput, match="the batch is empty"):
        owner.endpoints.predict("cancer", np.zeros((0, 30)))
    with pytest.raises(NotFound, match="endpoint 'nothing' not found"):
        owner.endpoints.predict("nothing", [[0.0] * 30])
    with pytest.raises(InvalidInput, match="request_id must be the id a prediction answered"):
        owner.endpoints.feedback("cancer", "nope", reward=1)
    with pytest.raises(InvalidInput, match="cannot predict on a str"):
        owner.endpoints.predict("cancer", "f0,f1")
    with pytest.raises(InvalidInput, match="a 1-D array cannot be rows"):
        owner.endpoints.predict("cancer", np.zeros(30))


def test_request_bodies_have_no_nan() -> None:
    mixed = pd.DataFrame(
        {
            "x": [1.5, np.nan],
            "n": [1, 2],
            "s": ["a", None],
            "t": pd.to_datetime(["2024-01-02", None]),
            "b": [True, False],
        }
    )
    assert request_body(mixed) == (
        b'{"columns":["x","n","s","t","b"],"data":[[1.5,1,"a","2024-01-02T00:00:00",true],'
        b"[null,2,null,null,false]]}"
    )
    floats = pd.DataFrame({"a": [np.nan, 2.0], "b": [np.inf, 1.0]})
    assert request_body(floats) == b'{"columns":["a","b"],"data":[[null,null],[2.0,1.0]]}'
    assert request_body([{"a": float("nan")}]) == b'{"records":[{"a":null}]}'
