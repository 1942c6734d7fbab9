"""The model registry through the API and SDK: versions, aliases, history, safety."""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import openmaas.jobs.handlers.run  # noqa: F401  (registers the "run" job kind)
from openmaas.demo import load_demo
from openmaas.jobs.worker import Worker
from tests.api.conftest import make_user
from tests.models.conftest import mlflow_zip


def _auth(client) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {client.token}"}


@pytest.fixture
def lab(admin, http):  # type: ignore[no-untyped-def]
    """An organisation with an owner, a maintainer and a contributor, and one model."""
    owner = make_user(admin, http, "olga")
    org = owner.orgs.create("lab")
    project = owner.projects.create("lab", "study")
    maint = make_user(admin, http, "max")
    contrib = make_user(admin, http, "cora")
    owner.orgs.set_member("lab", "max", "maintainer")
    owner.orgs.set_member("lab", "cora", "contributor")
    r = http.post(
        f"/api/v1/projects/{project.id}/models",
        json={"name": "cancer", "description": "breast cancer classifier", "tags": ["demo"]},
        headers=_auth(contrib),
    )
    assert r.status_code == 201, r.text
    return {"owner": owner, "maint": maint, "contrib": contrib, "project": project,
            "model": r.json(), "org": org}  # fmt: skip


def _upload(http, client, model_id, body, filename, **params):  # type: ignore[no-untyped-def]
    return http.post(
        f"/api/v1/models/{model_id}/versions/upload",
        params={"filename": filename, **params},
        content=body,
        headers=_auth(client),
    )


def test_upload_lightgbm_text_infers_the_signature(http, lab, model_txt) -> None:
    mid = lab["model"]["id"]
    r = _upload(http, lab["contrib"], mid, model_txt.read_bytes(), "model.txt")
    assert r.status_code == 201, r.text
    v = r.json()
    assert (v["version"], v["flavor"], v["source"]) == (1, "lightgbm", "upload")
    assert [c["name"] for c in v["signature"]["inputs"]] == [f"f{i}" for i in range(30)]
    assert [f["path"] for f in v["files"]] == ["model.txt"]
    got = http.get(f"/api/v1/models/{mid}/versions/1/files/model.txt", headers=_auth(lab["owner"]))
    assert got.content == model_txt.read_bytes()


def test_mlflow_model_folder_imports(http, lab, booster) -> None:
    r = _upload(http, lab["contrib"], lab["model"]["id"], mlflow_zip(booster), "mlflow_model.zip")
    assert r.status_code == 201, r.text
    v = r.json()
    assert (v["flavor"], v["source"]) == ("lightgbm", "mlflow")
    assert v["signature"]["inputs"][0] == {"name": "f0", "kind": "numeric"}
    assert v["metrics"]["mlflow"]["mlflow_version"] == "3.17.2"


def test_signature_that_does_not_fit_is_refused(http, lab, model_txt) -> None:
    sig = '{"inputs": [{"name": "a"}, {"name": "b"}]}'
    r = _upload(http, lab["contrib"], lab["model"]["id"], model_txt.read_bytes(), "model.txt",
                signature=sig)  # fmt: skip
    assert r.status_code == 422
    assert "2 inputs but the model reads 30 features" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("member", "message"),
    [
        ("../evil.txt", "unsafe path"),
        ("/etc/passwd", "unsafe path"),
        ("model/../../x", "unsafe path"),
    ],
)
def test_hostile_archives_are_refused(http, lab, member, message) -> None:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(member, "x")
    r = _upload(http, lab["contrib"], lab["model"]["id"], buf.getvalue(), "m.zip")
    assert r.status_code == 422 and message in r.json()["error"]["message"], r.text


def test_symlinks_and_bombs_are_refused(http, lab, platform) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("model.txt")
        info.external_attr = 0o120777 << 16  # a symbolic link
        zf.writestr(info, "/etc/passwd")
    r = _upload(http, lab["contrib"], lab["model"]["id"], buf.getvalue(), "m.zip")
    assert r.status_code == 422 and "not a plain file" in r.json()["error"]["message"]
    platform.settings.max_upload_bytes = 10_000
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.txt", b"0" * 1_000_000)
    r = _upload(http, lab["contrib"], lab["model"]["id"], bomb.getvalue(), "m.zip")
    assert r.status_code == 422 and "unpacks to" in r.json()["error"]["message"]
    r = _upload(http, lab["contrib"], lab["model"]["id"], b"tree\nnonsense", "model.txt")
    assert r.status_code == 422 and "not a LightGBM model" in r.json()["error"]["message"]
    assert http.get(f"/api/v1/models/{lab['model']['id']}/versions",
                    headers=_auth(lab["owner"])).json()["total"] == 0  # fmt: skip


def test_pickles_are_off_by_default_and_for_maintainers_only(http, lab, platform, cancer) -> None:  # type: ignore[no-untyped-def]
    X, y = cancer
    blob = pickle.dumps(LogisticRegression(max_iter=50).fit(X[:, :3], y))
    sig = '{"inputs": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}'
    mid = lab["model"]["id"]
    r = _upload(http, lab["maint"], mid, blob, "model.pkl", signature=sig)
    assert r.status_code == 422 and "pickle models are disabled" in r.json()["error"]["message"]
    platform.settings.allow_pickle_models = True
    r = _upload(http, lab["contrib"], mid, blob, "model.pkl", signature=sig)
    assert r.status_code == 403 and "only maintainers" in r.json()["error"]["message"]
    r = _upload(http, lab["maint"], mid, blob, "model.pkl", signature=sig)
    assert r.status_code == 201 and r.json()["flavor"] == "pickle"


def test_aliases_promotion_and_history(http, lab, model_txt) -> None:
    mid = lab["model"]["id"]
    for _ in range(2):
        assert _upload(http, lab["contrib"], mid, model_txt.read_bytes(), "model.txt").is_success
    base = f"/api/v1/models/{mid}/aliases"
    r = http.put(f"{base}/staging", json={"version": 2}, headers=_auth(lab["contrib"]))
    assert r.status_code == 200 and r.json()["aliases"] == {"staging": 2}
    r = http.put(f"{base}/production", json={"version": 2}, headers=_auth(lab["contrib"]))
    assert r.status_code == 403 and "maintainer" in r.json()["error"]["message"]
    r = http.put(f"{base}/production", json={"version": 1}, headers=_auth(lab["maint"]))
    assert r.json()["aliases"] == {"production": 1, "staging": 2}
    r = http.put(f"{base}/production", json={"version": 2}, headers=_auth(lab["maint"]))
    assert r.json()["aliases"]["production"] == 2
    r = http.put(f"{base}/Prod!", json={"version": 2}, headers=_auth(lab["maint"]))
    assert r.status_code == 422 and "invalid alias" in r.json()["error"]["message"]
    r = http.put(f"{base}/staging", json={"version": 9}, headers=_auth(lab["maint"]))
    assert r.status_code == 404 and "no version 9" in r.json()["error"]["message"]
    resolved = http.get("/api/v1/models/resolve", params={"ref": "cancer@production"},
                        headers=_auth(lab["owner"])).json()  # fmt: skip
    assert resolved["version"] == 2 and resolved["aliases"] == ["production", "staging"]
    events = http.get(f"/api/v1/models/{mid}/history", headers=_auth(lab["owner"])).json()
    lines = [(e["action"], e["actor"], e["version"], e["alias"]) for e in events["items"]]
    assert lines[:3] == [
        ("alias.set", "max", 2, "production"),
        ("alias.set", "max", 1, "production"),
        ("alias.set", "cora", 2, "staging"),
    ]
    assert events["items"][0]["details"]["previous"] == 1
    assert lines[-1] == ("create", "cora", None, None)


def test_version_from_a_run_keeps_its_lineage(platform, admin, http) -> None:
    load_demo(platform)
    task = next(t for t in admin.tasks.list(project="demo/benchmarks") if t.name == "wine")
    auth = {"Authorization": f"Bearer {admin.token}"}
    run = http.post(f"/api/v1/tasks/{task.id}/runs", json={"algorithm": "linear"}, headers=auth)
    Worker(platform, kinds=["run"], concurrency=1, poll_interval=0.05).run_until_idle(timeout=300)
    project_id = http.get(f"/api/v1/tasks/{task.id}", headers=auth).json()["project_id"]
    model = http.post(f"/api/v1/projects/{project_id}/models", json={"name": "wine"},
                      headers=auth).json()  # fmt: skip
    r = http.post(f"/api/v1/models/{model['id']}/versions", json={"run_id": run.json()["id"]},
                  headers=auth)  # fmt: skip
    assert r.status_code == 201, r.text
    v = r.json()
    assert v["flavor"] == "pipeline" and v["source"] == "run"
    assert v["lineage"]["run_id"] == run.json()["id"] and v["lineage"]["task_id"] == task.id
    assert v["lineage"]["dataset_version_id"] is not None
    assert v["signature"]["outputs"]["classes"] == ["class_0", "class_1", "class_2"]
    assert v["metrics"]["metric"] and v["metrics"]["score"] > 0.8
    assert "pipeline.json" in {f["path"] for f in v["files"]}
    queued = http.post(f"/api/v1/tasks/{task.id}/runs", json={"algorithm": "linear"}, headers=auth)
    r = http.post(f"/api/v1/models/{model['id']}/versions", json={"run_id": queued.json()["id"]},
                  headers=auth)  # fmt: skip
    assert r.status_code == 422 and "has no trained model" in r.json()["error"]["message"]


def test_outsiders_do_not_see_models(admin, http, lab) -> None:
    stranger = make_user(admin, http, "sam")
    r = http.get(f"/api/v1/models/{lab['model']['id']}", headers=_auth(stranger))
    assert r.status_code == 404
    assert http.get("/api/v1/models", headers=_auth(stranger)).json()["total"] == 0
    r = http.get("/api/v1/models/resolve", params={"ref": "cancer"}, headers=_auth(stranger))
    assert r.status_code == 404


def test_predictions_of_a_loaded_version_match_the_booster(
    lab, model_txt, booster, cancer, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from openmaas.ml import flavors

    (tmp_path / "model.txt").write_bytes(model_txt.read_bytes())
    predictor = flavors.load("lightgbm", tmp_path)
    X = cancer[0][:50]
    np.testing.assert_allclose(predictor.predict(X).predictions, booster.predict(X), atol=1e-12)


def test_models_list_by_exact_tag_with_paging(http, lab) -> None:
    base = f"/api/v1/projects/{lab['project'].id}/models"
    for name, tags in [("m1", ["demo_x"]), ("m2", ["dem", "prod"]), ("m3", ["demo", "prod"])]:
        r = http.post(base, json={"name": name, "tags": tags}, headers=_auth(lab["contrib"]))
        assert r.status_code == 201, r.text

    def names(**params: object) -> tuple[list[str], int]:
        r = http.get("/api/v1/models", params=params, headers=_auth(lab["owner"]))
        assert r.status_code == 200, r.text
        return [m["name"] for m in r.json()["items"]], r.json()["total"]

    assert names(tag="demo") == (["m3", "cancer"], 2)  # not "dem", not "demo_x"
    assert names(tag="DEMO") == (["m3", "cancer"], 2)  # tags are stored in lower case
    assert names(tag="de_o") == ([], 0)  # "_" is no wildcard
    assert names(tag="prod", limit=1, offset=1) == (["m2"], 2)
    assert names(limit=2) == (["m3", "m2"], 4)
