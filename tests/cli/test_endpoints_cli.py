"""``openmaas endpoint`` against the in-process server: deploy, call, share, account."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

import openmaas.jobs.handlers.run  # noqa: F401  (registers the "run" job kind)
from openmaas.api.app import create_app
from openmaas.cli import main as cli_main
from openmaas.client import Client
from openmaas.config import Settings
from openmaas.domain.context import Platform
from openmaas.domain.identity import bootstrap_admin
from openmaas.jobs.worker import Worker
from openmaas.serving.runtime import ServingRuntime
from tests.cli import test_cli
from tests.cli.test_cli import ADMIN_PASSWORD, URL, Run, Server, run_json
from tests.models import conftest as model_files

# The CLI fixtures of test_cli (a temporary home, a CliRunner, lab/study) and model files
# made on the spot (tests/models/conftest.py); `server` is ours, to reach the runtime.
home, run, admin_env, project = test_cli.home, test_cli.run, test_cli.admin_env, test_cli.project
booster, cancer, model_txt = model_files.booster, model_files.cancer, model_files.model_txt
FEATURES = [f"f{i}" for i in range(30)]


@pytest.fixture
def app(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    platform = Platform(Settings(home=home))
    app = create_app(platform)
    monkeypatch.setattr(
        cli_main, "make_client", lambda url, token: Client(url, token, http=TestClient(app))
    )
    yield app
    runtime: ServingRuntime = app.state.serving
    if runtime.ready:
        runtime.stop()
    platform.store.dispose()


@pytest.fixture
def server(app: Any) -> Server:
    boot = bootstrap_admin(app.state.serving.platform, password=ADMIN_PASSWORD)
    assert boot.token is not None
    return Server(app.state.serving.platform, boot.token)


@pytest.fixture
def deployed(run: Run, project: str, model_txt: Path) -> str:
    """``lab/study/cancer`` with two versions (the same booster twice), version 1 served."""
    run("model", "create", project, "cancer")
    run("model", "upload", "cancer", str(model_txt))
    run("model", "upload", "cancer", str(model_txt))
    run("endpoint", "create", project, "cancer", "--target", "cancer@1")
    return "cancer"


def consumer_token(app: Any) -> str:
    """A predict-only token of ``cleo``, a member of the organisation ``clinic``."""
    admin = Client(URL, None, http=TestClient(app))
    admin.login("admin", ADMIN_PASSWORD)
    admin.users.create("cleo", "password-123")
    cleo = Client(URL, None, http=TestClient(app))
    cleo.login("cleo", "password-123")
    cleo.orgs.create("clinic")
    return str(cleo.tokens.create("calls", scopes=["predict"]).token)


def test_help_lists_the_endpoint_commands(run: Run) -> None:
    assert "│ endpoint " in run("--help").stdout
    out = run("endpoint", "--help").stdout
    for name in ("create", "list", "show", "update", "delete", "deploy", "canary", "consumer"):
        assert f"│ {name} " in out
    for name in ("predict", "feedback", "usage", "stats", "logs"):
        assert f"│ {name} " in out
    out = run("endpoint", "consumer", "--help").stdout
    assert "│ add " in out and "│ rm " in out


def test_deploy_predict_and_canary(
    run: Run, project: str, model_txt: Path, booster: lgb.Booster, cancer, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    run("model", "create", project, "cancer")
    run("model", "upload", "cancer", str(model_txt))
    run("model", "upload", "cancer", str(model_txt))
    created = run_json(
        run, "endpoint", "create", project, "cancer", "-t", "cancer@1", "--max-rows", "100",
        "--description", "who is at risk",
    )  # fmt: skip
    assert (created["name"], created["project"], created["limits"]["max_rows"]) == (
        "cancer", "lab/study", 100
    )  # fmt: skip
    assert [(t["version"], t["weight"]) for t in created["targets"]] == [(1, 100)]
    out = run("endpoint", "create", project, "other", "-t", "lab/study/cancer@2").stdout
    assert (
        out.strip() == "Created endpoint other in lab/study: POST /api/v1/endpoints/other/predict"
    )
    assert [e["name"] for e in run_json(run, "endpoint", "list", "--project", project)] == [
        "other", "cancer"
    ]  # fmt: skip
    listed = run("endpoint", "list").stdout
    assert "cancer@1 100%" in listed and "cancer@2 100%" in listed
    shown = run("endpoint", "show", "cancer").stdout
    for text in ("who is at risk", "Versions", "cancer@1", "100%", "at most 100 rows per request"):
        assert text in shown

    X = cancer[0][:20].copy()
    X[2, 5] = np.nan  # an empty CSV cell: sent as null, the booster takes it as missing
    csv = tmp_path / "rows.csv"
    pd.DataFrame(X, columns=FEATURES).to_csv(csv, index=False)
    answer = run_json(run, "endpoint", "predict", "cancer", "--file", str(csv))
    np.testing.assert_allclose(answer["predictions"], booster.predict(X), atol=1e-9)
    assert answer["version"] == created["targets"][0]["version_id"] and answer["request_id"]
    result = run("endpoint", "predict", "cancer", "-f", str(csv), "-o", str(tmp_path / "p.csv"))
    assert "answered by version" in result.stderr and "prediction" in result.stdout
    saved = pd.read_csv(tmp_path / "p.csv")
    np.testing.assert_allclose(saved["prediction"], booster.predict(X), atol=1e-9)
    body = json.dumps({"records": [dict(zip(FEATURES, X[0].tolist(), strict=True))]})
    one = run_json(run, "endpoint", "predict", "cancer", "--json-body", body.replace("NaN", "null"))
    np.testing.assert_allclose(one["predictions"], booster.predict(X[:1]), atol=1e-9)

    result = run("endpoint", "canary", "cancer", "cancer@1", "cancer@2", "--percent", "10")
    assert result.stdout.strip() == "cancer: 10% of the traffic now goes to cancer@2"
    assert "now serving: cancer@1 90%, cancer@2 10% (split)" in result.stderr
    deployed = run_json(
        run, "endpoint", "deploy", "cancer", "-t", "cancer@2", "--shadow", "cancer@1"
    )
    assert [(t["version"], t["weight"], t["shadow"]) for t in deployed["targets"]] == [
        (2, 100, False), (1, 0, True)
    ]  # fmt: skip
    bandit = run_json(
        run, "endpoint", "deploy", "cancer", "-t", "cancer@1", "-t", "cancer@2",
        "--policy", "epsilon_greedy", "--epsilon", "0.2",
    )  # fmt: skip
    assert bandit["routing"] == {"mode": "bandit", "policy": "epsilon_greedy", "epsilon": 0.2,
                                 "seed": None}  # fmt: skip
    assert "bandit (epsilon_greedy, ε=0.2)" in run("endpoint", "show", "cancer").stdout


def test_a_consumer_calls_and_the_owner_reads_the_books(
    run: Run, app: Any, deployed: str, tmp_path: Path
) -> None:
    token = consumer_token(app)
    row = json.dumps({"data": [[0.0] * 30]})
    result = run("--token", token, "endpoint", "predict", "cancer", "--json-body", row, code=1)
    assert result.stderr == "error: endpoint not found (not_found)\n"  # not theirs to call

    result = run("endpoint", "consumer", "add", "cancer", "clinic", "--rate-limit", "2")
    assert result.stdout.strip() == "clinic may call cancer"
    assert "--audience consumers" in result.stderr  # the audience is still 'project'
    run("endpoint", "update", "cancer", "--audience", "consumers", "--sample-rate", "1")
    shown = run_json(run, "endpoint", "show", "cancer")
    assert (shown["audience"], shown["consumers"]) == ("consumers", {"clinic": 2})

    calls = [
        run_json(run, "--token", token, "endpoint", "predict", "cancer", "--json-body", row)
        for _ in range(2)
    ]
    result = run("--token", token, "endpoint", "predict", "cancer", "--json-body", row, code=1)
    assert result.stderr.startswith("error: rate limit ") and "(rate_limited); retry in" in (
        result.stderr
    )
    request_id = calls[0]["request_id"]
    out = run(
        "--token", token, "endpoint", "feedback", "cancer", request_id, "--reward", "1",
        "--label", "1",
    )  # fmt: skip
    assert out.stdout.strip() == f"Recorded feedback on {request_id}"
    result = run("--token", token, "endpoint", "usage", "cancer", code=1)
    assert result.stderr.startswith("error: ")  # a predict token reads no books

    app.state.serving.flush()
    usage = run_json(run, "endpoint", "usage", "cancer")
    cleo = next(u for u in usage if u["consumer"] == "cleo")
    assert (cleo["requests"], cleo["rows"], cleo["errors"]) == (3, 2, 1)
    table = run("endpoint", "usage", "cancer").stdout
    assert "consumer" in table and "cleo" in table
    stats = run("endpoint", "stats", "cancer").stdout
    for text in ("cancer@1", "refused", "mean reward", "p50 ms", "p99 ms", "≤ "):
        assert text in stats
    quality = run("endpoint", "quality", "cancer").stdout
    assert "cancer@1 (regression)" in quality and "overall" in quality and "rmse" in quality
    drift = run("endpoint", "drift", "cancer")
    assert "no drift flagged" in drift.stdout
    assert "cancer@1: the version has no training dataset" in drift.stderr
    logged = run_json(run, "endpoint", "logs", "cancer", "--kind", "request")
    assert {r["request_id"] for r in logged} == {c["request_id"] for c in calls}
    logs = run("endpoint", "logs", "cancer", "--kind", "feedback").stdout
    assert request_id in logs and "cleo" in logs

    out = run("endpoint", "consumer", "rm", "cancer", "clinic").stdout
    assert out.strip() == "clinic may no longer call cancer"
    run("endpoint", "delete", "cancer", input="n\n", code=1)  # declined
    assert run("endpoint", "delete", "cancer", "--yes").stdout.strip() == "Deleted endpoint cancer"
    assert run_json(run, "endpoint", "list") == []


def test_mistakes_are_named(run: Run, deployed: str, tmp_path: Path) -> None:
    result = run("endpoint", "predict", "cancer", code=2)
    assert "give either --file or --json-body" in result.stderr
    result = run("endpoint", "deploy", "cancer", "-t", "cancer@1=ninety", code=2)
    assert "'cancer@1=ninety' is not VERSION or VERSION=WEIGHT" in result.stderr
    result = run("endpoint", "deploy", "cancer", "-t", "cancer@1=60", "-t", "cancer@2=30", code=1)
    assert result.stderr.startswith("error: ") and "100" in result.stderr
    result = run("endpoint", "create", "lab/study", "cancer", "-t", "cancer@1", code=1)
    assert result.stderr == "error: endpoint 'cancer' already exists (conflict)\n"
    result = run("endpoint", "show", "nothing", code=1)
    assert result.stderr == "error: endpoint 'nothing' not found (not_found)\n"
    body = json.dumps({"columns": FEATURES[:-1], "data": [[0.0] * 29]})
    result = run("endpoint", "predict", "cancer", "--json-body", body, code=1)
    assert "missing column 'f29'" in result.stderr and "(invalid_input)" in result.stderr
    bad = tmp_path / "rows.txt"
    bad.write_text("f0\n1\n")
    result = run("endpoint", "predict", "cancer", "-f", str(bad), code=2)
    assert "cannot tell the format" in result.stderr
    result = run("endpoint", "feedback", "cancer", "1-abc", code=2)
    assert "give --reward, --label or both" in result.stderr
    result = run("endpoint", "update", "cancer", code=2)
    assert "nothing to change" in result.stderr


def test_drift_names_the_shifted_feature(run: Run, app: Any, project: str) -> None:
    """A model trained by a run on a profiled dataset: its inputs are compared with that."""
    names = ["x0", "x1", "x2"]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 3))
    frame = pd.DataFrame(X, columns=names).assign(y=(X[:, 0] > 0).astype(int))
    admin = Client(URL, None, http=TestClient(app))
    admin.login("admin", ADMIN_PASSWORD)
    dataset = admin.datasets.upload(project, frame, name="normal", target="y")
    task = admin.tasks.create(project, "normal", dataset, type="binary", target="y")
    trained = admin.runs.create(task, "linear")
    platform = app.state.serving.platform
    Worker(platform, kinds=["run"], concurrency=1, poll_interval=0.05).run_until_idle(timeout=300)
    admin.models.register_run(admin.models.create(project, "normal"), trained.id)
    run("endpoint", "create", project, "normal", "-t", "normal@1")
    shifted = rng.standard_normal((300, 3))
    shifted[:, 2] += 1.0
    body = json.dumps({"columns": names, "data": shifted.tolist()})
    run("endpoint", "predict", "normal", "--json-body", body)
    app.state.serving.flush()

    report = run_json(run, "endpoint", "drift", "normal")
    assert report["flagged"] and report["flagged_features"] == ["x2"]
    result = run("endpoint", "drift", "normal", "--windows-table")
    assert "drift in x2" in result.stdout and "FLAGGED" in result.stdout
    assert "normal@1: the newest 1 window(s), 300 rows" in result.stdout
    assert "normal@1: windows" in result.stdout and "prediction psi" in result.stdout


def test_unreadable_row_files_are_usage_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import typer

    from openmaas.cli.endpoints import read_rows

    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "bad.json").write_text("{nope")
    for name, message in [("empty.csv", "cannot read"), ("bad.json", "not valid JSON")]:
        with pytest.raises(typer.BadParameter, match=message):
            read_rows(tmp_path / name)
