"""``openmaas model`` against the in-process server."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from openmaas import demo as demo_content
from openmaas.cli import main as cli_main
from openmaas.demo import DEMOS, load_demo
from tests.cli import test_cli
from tests.cli.test_cli import URL, Run, Server, run_json
from tests.models import conftest as model_files

# The CLI fixtures of test_cli (a temporary home, a CliRunner, the in-process server, lab/study)
# and model files made on the spot (tests/models/conftest.py).
home, run, server, admin_env = test_cli.home, test_cli.run, test_cli.server, test_cli.admin_env
project = test_cli.project
booster, cancer, model_txt = model_files.booster, model_files.cancer, model_files.model_txt


@pytest.fixture
def mlflow_files(booster: lgb.Booster, tmp_path: Path) -> tuple[Path, Path]:
    """The same MLflow model as a folder and as a zip file."""
    archive = tmp_path / "mlflow_model.zip"
    archive.write_bytes(model_files.mlflow_zip(booster))
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp_path / "unzipped")
    return tmp_path / "unzipped" / "mlflow_model", archive


def test_help_lists_the_model_commands(run: Run) -> None:
    assert "│ model " in run("--help").stdout
    out = run("model", "--help").stdout
    for name in ("create", "list", "show", "update", "delete", "register", "upload", "versions"):
        assert f"│ {name} " in out
    for name in ("history", "download", "alias"):
        assert f"│ {name} " in out
    assert "│ rm " in run("model", "alias", "--help").stdout


def test_model_card_lifecycle(run: Run, project: str) -> None:
    created = run_json(
        run, "model", "create", project, "cancer", "--description", "breast cancer classifier",
        "--licence", "MIT", "--tag", "demo", "--tag", "lgbm",
    )  # fmt: skip
    assert (created["project"], created["name"], created["tags"]) == (
        "lab/study", "cancer", ["demo", "lgbm"]
    )  # fmt: skip
    out = run("model", "create", project, "other").stdout
    assert out.startswith("Created model lab/study/other (id ")

    listed = run_json(run, "model", "list", "--project", project, "--tag", "demo")
    assert [m["name"] for m in listed] == ["cancer"]
    assert "lab/study" in run("model", "list").stdout
    assert run_json(run, "model", "list", "--q", "nothing-like-it") == []

    out = run("model", "update", "lab/study/cancer", "--intended-use", "research only").stdout
    assert out.strip() == "Updated model lab/study/cancer"
    shown = run("model", "show", "cancer").stdout
    for text in ("Model lab/study/cancer", "research only", "MIT", "No versions yet"):
        assert text in shown
    assert run_json(run, "model", "show", str(created["id"]))["model"]["licence"] == "MIT"
    run("model", "update", "cancer", code=2)  # nothing to change

    run("model", "delete", "other", input="n\n", code=1)  # declined
    assert (
        run("model", "delete", "other", "--yes").stdout.strip() == "Deleted model lab/study/other"
    )
    result = run("model", "show", "other", code=1)
    assert result.stderr == "error: model 'other' not found (not_found)\n"


def test_upload_aliases_history_and_download(
    run: Run,
    admin_env: Server,
    project: str,
    model_txt: Path,
    mlflow_files: tuple[Path, Path],
    booster: lgb.Booster,
    cancer,
    tmp_path: Path,
) -> None:  # type: ignore[no-untyped-def]
    folder, archive = mlflow_files
    run("model", "create", project, "cancer")
    result = run("model", "upload", "cancer", str(model_txt), "--description", "first")
    assert "Created version lab/study/cancer@1 (lightgbm, 30 inputs)" in result.stdout
    assert "Checking the model on the server" in result.stderr  # the progress bar, on stderr
    v2 = run_json(run, "model", "upload", "cancer", str(folder))
    assert (v2["version"], v2["flavor"], v2["source"]) == (2, "lightgbm", "mlflow")
    v3 = run_json(run, "model", "upload", "lab/study/cancer", str(archive))
    assert (v3["version"], v3["source"]) == (3, "mlflow")
    columns = [arg for i in range(30) for arg in ("--column", f"x{i}")]
    v4 = run_json(run, "model", "upload", "cancer", str(model_txt), *columns)
    assert v4["signature"]["inputs"][29] == {"name": "x29", "kind": "numeric"}
    result = run("model", "upload", "cancer", str(model_txt), "--column", "a", code=1)
    assert "the signature has 1 inputs but the model reads 30 features" in result.stderr

    assert [v["version"] for v in run_json(run, "model", "versions", "cancer")] == [4, 3, 2, 1]
    out = run("model", "versions", "cancer").stdout
    assert "mlflow" in out and "upload" in out and "first" in out

    out = run("model", "alias", "set", "cancer", "production", "2").stdout
    assert "lab/study/cancer@production is now version 2" in out
    model = run_json(run, "model", "alias", "set", "cancer", "staging", "3")
    assert model["aliases"] == {"production": 2, "staging": 3}
    assert run_json(run, "model", "alias", "rm", "cancer", "staging")["aliases"] == {
        "production": 2
    }
    result = run("model", "alias", "set", "cancer", "Prod!", "2", code=1)
    assert "invalid alias 'Prod!'" in result.stderr

    history = run_json(run, "model", "history", "cancer")
    assert [(e["action"], e["alias"]) for e in history[:3]] == [
        ("alias.remove", "staging"), ("alias.set", "staging"), ("alias.set", "production")
    ]  # fmt: skip
    assert "alias.set" in run("model", "history", "cancer").stdout

    shown = run("model", "show", "cancer@production").stdout
    for text in ("lab/study/cancer@2", "mlflow", "production", "f0, f1", "model.txt"):
        assert text in shown
    assert run_json(run, "model", "show", "cancer@1")["description"] == "first"

    dest = tmp_path / "downloaded"
    result = run("model", "download", "cancer@production", str(dest))
    assert f"Saved lab/study/cancer@2 (1 file(s), lightgbm) to {dest}" in result.stdout
    assert (dest / "model.txt").read_text() == booster.model_to_string()
    info = run_json(run, "model", "download", "cancer@1", str(tmp_path / "v1"))
    assert info["files"] == [str(tmp_path / "v1" / "model.txt")]

    # What the CLI registered, the SDK loads and predicts with, as the booster would.
    sdk = cli_main.make_client(URL, admin_env.admin_token)
    local = sdk.models.load("cancer@production", cache_dir=tmp_path / "cache")
    X = cancer[0][:20]
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(30)])
    np.testing.assert_allclose(local.predict(frame), booster.predict(X), atol=1e-12)


def test_register_refuses_a_run_without_a_model(
    run: Run, admin_env: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo_content, "DEMOS", {"wine": DEMOS["wine"]})
    load_demo(admin_env.platform)
    task = run_json(run, "task", "list", "--project", "demo/benchmarks")[0]
    queued = run_json(run, "run", "create", "--task", str(task["id"]), "--algo", "linear")
    run("model", "create", "demo/benchmarks", "wine")
    result = run("model", "register", "wine", "--run", str(queued["id"]), code=1)
    assert result.stderr == (
        f"error: run {queued['id']} has no trained model (it is a queued platform run) "
        "(invalid_input)\n"
    )


def test_signature_file_and_bad_options(run: Run, project: str, model_txt: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    run("model", "create", project, "cancer")
    sig = tmp_path / "signature.json"
    sig.write_text(json.dumps({"inputs": [{"name": f"c{i}"} for i in range(30)]}))
    v = run_json(run, "model", "upload", "cancer", str(model_txt), "--signature", str(sig))
    assert v["signature"]["inputs"][0]["name"] == "c0"
    result = run(
        "model", "upload", "cancer", str(model_txt), "--signature", str(sig), "--column", "a",
        code=2,
    )  # fmt: skip
    assert "give --signature or --column, not both" in result.stderr
    sig.write_text("[1, 2]")
    result = run("model", "upload", "cancer", str(model_txt), "--signature", str(sig), code=2)
    assert "must hold a JSON object" in result.stderr
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../evil.txt", "x")
    (tmp_path / "evil.zip").write_bytes(buf.getvalue())
    result = run("model", "upload", "cancer", str(tmp_path / "evil.zip"), code=1)
    assert "unsafe path" in result.stderr and "Traceback" not in result.output
