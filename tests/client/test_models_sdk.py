"""``client.models`` on the in-process app: the registry, downloads and models loaded locally."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import openmaas.jobs.handlers.run  # noqa: F401  (registers the "run" job kind)
from openmaas import demo as demo_content
from openmaas.client import Client, LocalModel, Model, ModelVersion
from openmaas.client.registry import Models
from openmaas.demo import DEMOS, load_demo
from openmaas.domain.context import Platform
from openmaas.errors import InvalidFile, InvalidInput, NotFound
from openmaas.jobs.worker import Worker
from tests.models import conftest as model_files

# Model files made on the spot (tests/models/conftest.py).
booster, cancer, model_txt = model_files.booster, model_files.cancer, model_files.model_txt
FEATURES = [f"f{i}" for i in range(30)]


@pytest.fixture
def project(admin: Client) -> str:
    admin.orgs.create("lab")
    admin.projects.create("lab", "study")
    return "lab/study"


@pytest.fixture
def model(admin: Client, project: str) -> Model:
    return admin.models.create(
        project, "cancer", description="breast cancer classifier", licence="MIT", tags=["demo"]
    )


def mlflow_folder(booster: lgb.Booster, where: Path) -> Path:
    """An MLflow model folder on disk, as ``mlflow.lightgbm.save_model`` leaves it."""
    with zipfile.ZipFile(io.BytesIO(model_files.mlflow_zip(booster))) as zf:
        zf.extractall(where)
    return where / "mlflow_model"


def frame(X: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(X, columns=FEATURES)


def test_model_card_and_lookup_by_name(admin: Client, project: str, model: Model) -> None:
    assert (model.project, model.name, model.full_name) == (
        "lab/study",
        "cancer",
        "lab/study/cancer",
    )
    assert (model.licence, model.tags, model.latest_version, model.aliases) == (
        "MIT", ["demo"], 0, {}
    )  # fmt: skip
    for ref in (model.id, str(model.id), "cancer", "lab/study/cancer", "cancer@production"):
        assert admin.models.get(ref).id == model.id
    assert [m.name for m in admin.models.list(project=project, q="canc", tag="demo")] == ["cancer"]
    assert admin.models.list(tag="other").total == 0

    updated = admin.models.update("cancer", intended_use="research only", tags=["demo", "lgbm"])
    assert (updated.intended_use, updated.tags, updated.description) == (
        "research only", ["demo", "lgbm"], "breast cancer classifier"
    )  # fmt: skip

    admin.projects.create("lab", "other")
    twin = admin.models.create("lab/other", "cancer")
    with pytest.raises(InvalidInput, match=r"several projects have a model 'cancer' \(lab/other, "):
        admin.models.get("cancer")
    assert admin.models.get("lab/other/cancer").id == twin.id
    admin.models.delete("lab/other/cancer")
    with pytest.raises(NotFound, match=r"^model 'nope' not found$"):
        admin.models.get("nope")
    assert admin.models.get("cancer").id == model.id


def test_upload_alias_and_load_predict_like_the_booster(
    admin: Client, model: Model, booster: lgb.Booster, model_txt: Path, cancer, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    sent: list[tuple[int, int | None]] = []
    v1 = admin.models.upload(
        model, model_txt, description="text", progress=lambda *a: sent.append(a)
    )
    assert (v1.version, v1.flavor, v1.source, v1.description) == (1, "lightgbm", "upload", "text")
    assert v1.input_names == FEATURES and v1.classes is None
    assert sent[-1] == (model_txt.stat().st_size,) * 2
    v2 = admin.models.upload("cancer", mlflow_folder(booster, tmp_path / "mlflow"))
    assert (v2.version, v2.flavor, v2.source, v2.ref) == (
        2,
        "lightgbm",
        "mlflow",
        "lab/study/cancer@2",
    )
    assert v2.metrics["mlflow"]["mlflow_version"] == "3.17.2"
    archive = tmp_path / "mlflow_model.zip"
    archive.write_bytes(model_files.mlflow_zip(booster))
    v3 = admin.models.upload(model, archive, description="zipped")
    assert (v3.version, v3.source, v3.input_names) == (3, "mlflow", FEATURES)
    assert [v.version for v in admin.models.versions(model)] == [3, 2, 1]
    assert [v.version for v in admin.models.versions(model, limit=1, offset=1)] == [2]
    assert admin.models.version(model, 1) == v1

    after = admin.models.set_alias(model, "production", 2)
    assert isinstance(after, Model) and after.aliases == {"production": 2}
    assert admin.models.set_alias("cancer", "staging", 1).aliases == {"production": 2, "staging": 1}
    resolved = admin.models.resolve("cancer@production")
    assert isinstance(resolved, ModelVersion) and resolved.version == 2
    assert (
        resolved.aliases == ["production"]
        and repr(resolved) == "ModelVersion('lab/study/cancer@2')"
    )

    local = admin.models.load("cancer@production", cache_dir=tmp_path / "cache")
    assert isinstance(local, LocalModel) and local.version.version == 2
    X = cancer[0][:40]
    expected = booster.predict(X)
    np.testing.assert_allclose(local.predict(X), expected, atol=1e-12)
    shuffled = frame(X)[FEATURES[::-1]].assign(patient=np.arange(40))  # any order, extra columns
    np.testing.assert_allclose(local.predict(shuffled), expected, atol=1e-12)
    assert not hasattr(local, "predict_proba")  # a bare binary booster gives P(class 1)
    with pytest.raises(
        InvalidInput, match=r"^the input lacks 2 column\(s\) the model reads: f3, f7$"
    ):
        local.predict(frame(X).drop(columns=["f3", "f7"]))
    with pytest.raises(InvalidInput, match=r"2-D array with 30 columns .* shape \(40, 29\)$"):
        local.predict(X[:, :29])

    events = admin.models.history(model)
    assert [(e.action, e.version, e.alias) for e in events.items[:2]] == [
        ("alias.set", 1, "staging"), ("alias.set", 2, "production")
    ]  # fmt: skip
    assert events.items[-1].action == "create" and events.items[0].actor == "admin"
    assert admin.models.remove_alias(model, "staging").aliases == {"production": 2}
    with pytest.raises(NotFound, match=r"has no alias 'staging'"):
        admin.models.resolve("cancer@staging")


def test_download_checks_every_file_and_load_caches_by_content(
    admin: Client, model: Model, model_txt: Path, cancer, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    admin.models.upload(model, model_txt)
    seen: list[tuple[int, int | None]] = []
    out = admin.models.download("cancer@1", tmp_path / "v1", lambda *a: seen.append(a))
    assert [p.name for p in out.iterdir()] == ["model.txt"]
    assert (out / "model.txt").read_bytes() == model_txt.read_bytes()
    assert seen[-1] == (model_txt.stat().st_size,) * 2

    url = f"/models/{model.id}/versions/1/files/model.txt"
    with pytest.raises(InvalidFile, match=r"does not match its checksum"):
        admin._http.download(url, io.BytesIO(), {}, sha256="0" * 64)

    downloads: list[str] = []
    real = Models.download
    monkeypatch.setattr(
        Models, "download", lambda self, ref, *a: downloads.append(ref.ref) or real(self, ref, *a)
    )
    cache = tmp_path / "cache"
    first = admin.models.load("cancer", cache_dir=cache)
    admin.models.upload(model, model_txt)  # the same files again: version 2, same content
    second = admin.models.load("cancer@2", cache_dir=cache)
    assert first.directory == second.directory and downloads == ["lab/study/cancer@1"]
    (first.directory / "model.txt").write_text("tampered")
    third = admin.models.load("cancer@2", cache_dir=cache)
    assert downloads == ["lab/study/cancer@1", "lab/study/cancer@2"]
    X = cancer[0][:5]
    np.testing.assert_allclose(third.predict(X), first.predict(X))
    assert [p.name for p in cache.iterdir()] == [first.directory.name]  # no leftovers


def test_pickles_load_only_when_allowed(
    platform: Platform, admin: Client, model: Model, cancer, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    X, y = cancer
    platform.settings.allow_pickle_models = True
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(LogisticRegression(max_iter=50).fit(X[:, :3], y)))
    version = admin.models.upload(model, path, signature=["a", "b", "c"])
    assert version.flavor == "pickle" and version.classes is None  # never loaded by the server
    with pytest.raises(InvalidInput, match=r"is a pickle, and loading a pickle runs code"):
        admin.models.load("cancer", cache_dir=tmp_path / "cache")
    local = admin.models.load("cancer", cache_dir=tmp_path / "cache", allow_pickle=True)
    assert local.classes == [0, 1]
    proba = local.predict_proba(pd.DataFrame(X[:10, :3], columns=["a", "b", "c"]))
    assert proba.shape == (10, 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert set(local.predict(X[:10, :3])) <= {0, 1}


def test_a_version_from_a_run_predicts_classes(
    platform: Platform, admin: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(demo_content, "DEMOS", {"wine": DEMOS["wine"]})
    load_demo(platform)
    task = next(t for t in admin.tasks.list(project="demo/benchmarks") if t.name == "wine")
    run = admin.runs.create(task, "linear")
    Worker(platform, kinds=["run"], concurrency=1, poll_interval=0.05).run_until_idle(timeout=120)
    model = admin.models.create("demo/benchmarks", "wine")
    version = admin.models.register_run(model, run.wait(timeout=5), description="baseline")
    assert (version.flavor, version.source, version.lineage["run_id"]) == (
        "pipeline",
        "run",
        run.id,
    )
    assert version.classes == ["class_0", "class_1", "class_2"]

    local = admin.models.load(version, cache_dir=tmp_path / "cache")
    data = admin.datasets.to_pandas(task.dataset_id)  # the target column comes along: ignored
    labels = local.predict(data)
    assert len(labels) == len(data) and set(labels) <= set(version.classes)
    assert (labels == data[task.spec["target_columns"][0]]).mean() > 0.8
    proba = local.predict_proba(data)
    assert proba.shape == (len(data), 3) and np.allclose(proba.sum(axis=1), 1.0)
    assert list(local.predict(data[local.input_names].to_numpy())) == list(labels)


def test_onnx_classifier_gives_probabilities(
    admin: Client, model: Model, cancer, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from skl2onnx import to_onnx

    X, y = cancer
    clf = LogisticRegression(max_iter=200).fit(X[:, :3], y)
    onx = to_onnx(clf, X[:1, :3].astype(np.float32), options={"zipmap": False})
    path = tmp_path / "model.onnx"
    path.write_bytes(onx.SerializeToString())
    version = admin.models.upload(model, path, signature=["a", "b", "c"])
    assert version.flavor == "onnx"
    local = admin.models.load(version, cache_dir=tmp_path / "cache")
    rows = pd.DataFrame(X[:20, :3], columns=["a", "b", "c"])
    np.testing.assert_allclose(local.predict_proba(rows), clf.predict_proba(X[:20, :3]), atol=1e-5)
    assert local.classes == [0, 1] and list(local.predict(rows)) == list(clf.predict(X[:20, :3]))
