"""The ``openmaas`` command line against a real in-process server.

Remote commands get their SDK client from ``openmaas.cli.main.make_client``,
replaced here by one whose transport is a Starlette ``TestClient`` on the app;
local commands use the stores under ``OPENMAAS_HOME``, the same home the app uses.
"""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner, Result

from openmaas.api.app import create_app
from openmaas.cli import credentials
from openmaas.cli import main as cli_main
from openmaas.client import Client
from openmaas.config import Settings
from openmaas.domain.context import Platform
from openmaas.domain.identity import bootstrap_admin

ADMIN_PASSWORD = "admin-password"
URL = "http://openmaas.test"

Run = Callable[..., Result]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean environment: stores in a temporary home, credentials in a temporary config."""
    for name in ("TOKEN", "CONFIG", "DATABASE_URL", "ARTIFACT_URL", "SECRET_ADMIN_PASSWORD"):
        monkeypatch.delenv(f"OPENMAAS_{name}", raising=False)
    monkeypatch.setenv("OPENMAAS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPENMAAS_URL", URL)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("COLUMNS", "200")  # wide tables: cells are not folded
    return tmp_path / "home"


@pytest.fixture
def run(home: Path) -> Run:
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, code: int = 0) -> Result:
        result = runner.invoke(cli_main.app, list(args), input=input)
        assert result.exit_code == code, (
            f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
        )
        if code == 0:
            assert result.exception is None
        return result

    return invoke


def run_json(run: Run, *args: str) -> Any:
    return json.loads(run(*args, "--json").stdout)


@dataclass
class Server:
    platform: Platform
    admin_token: str


@pytest.fixture
def server(home: Path, monkeypatch: pytest.MonkeyPatch) -> Server:
    platform = Platform(Settings(home=home))
    app = create_app(platform)
    boot = bootstrap_admin(platform, password=ADMIN_PASSWORD)
    assert boot.token is not None

    def make_client(url: str, token: str | None) -> Client:
        assert url == URL
        return Client(url, token, http=TestClient(app))

    monkeypatch.setattr(cli_main, "make_client", make_client)
    return Server(platform, boot.token)


@pytest.fixture
def admin_env(server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    monkeypatch.setenv("OPENMAAS_TOKEN", server.admin_token)
    return server


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame(
        {
            "x": np.round(rng.normal(size=n), 4),
            "colour": rng.choice(["red", "green", "blue"], size=n),
            "label": np.where(np.arange(n) % 3 == 0, "pos", "neg"),
            "day": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        }
    )
    path = tmp_path / "toy.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def project(run: Run, admin_env: Server) -> str:
    run("org", "create", "lab")
    run("project", "create", "lab/study")
    return "lab/study"


@pytest.fixture
def dataset_id(run: Run, project: str, csv_file: Path) -> int:
    out = run_json(run, "dataset", "upload", project, str(csv_file), "--name", "toy")
    return int(out["dataset"]["id"])


# Help ----------------------------------------------------------------------------------


def test_help_lists_every_command_group(run: Run) -> None:
    out = run("--help").stdout
    for name in ("login", "whoami", "org", "project", "dataset", "task", "db", "gc", "server"):
        assert name in out
    assert "--spec-file" in run("task", "create", "--help").stdout


# Account -------------------------------------------------------------------------------


def test_login_whoami_logout(run: Run, server: Server) -> None:
    out = run("login", "--username", "admin", "--password", ADMIN_PASSWORD).stdout
    assert "Logged in to http://openmaas.test as admin" in out
    file = credentials.path()
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    token = json.loads(file.read_text())[URL]

    me = run_json(run, "whoami")
    assert me["username"] == "admin" and me["is_admin"] is True
    assert "credentials file" in run("whoami").stdout

    run("logout")
    assert URL not in json.loads(file.read_text())
    result = run("whoami", code=1)
    assert result.stderr.startswith("error: not logged in")
    assert "(unauthenticated); run `openmaas login`" in result.stderr
    # logout revoked the token on the server too
    result = run("--token", token, "whoami", code=1)
    assert result.stderr == "error: this token has been revoked (unauthenticated)\n"


def test_login_prompts_for_missing_values(run: Run, server: Server) -> None:
    result = run("login", input=f"admin\n{ADMIN_PASSWORD}\n")
    assert ADMIN_PASSWORD not in result.output  # hidden input
    assert run_json(run, "whoami")["username"] == "admin"


def test_wrong_password_is_one_line_error(run: Run, server: Server) -> None:
    result = run("login", "-u", "admin", "-p", "wrong-password", code=1)
    assert result.stderr == "error: wrong username or password (unauthenticated)\n"
    assert not credentials.path().exists()


def test_users_and_tokens(run: Run, admin_env: Server) -> None:
    run("user", "create", "bob", "--password", "bob-password")
    assert [u["username"] for u in run_json(run, "user", "list")] == ["admin", "bob"]
    new = run_json(run, "token", "create", "--name", "ci", "--scope", "read", "--days", "7")
    assert new["token"].startswith("om_") and new["scopes"] == ["read"]
    assert run("--token", new["token"], "whoami").exit_code == 0
    out = run("token", "create", "--name", "shown").stdout
    assert "om_" in out
    run("token", "revoke", str(new["id"]))
    listed = {t["name"]: t for t in run_json(run, "token", "list")}
    assert listed["ci"]["revoked_at"] is not None and listed["shown"]["revoked_at"] is None


# Organisations and projects ------------------------------------------------------------------


def test_org_and_project_with_grant(run: Run, admin_env: Server) -> None:
    run("org", "create", "lab", "--description", "A lab")
    run("org", "create", "partner")
    out = run("project", "create", "lab/study", "--public", "--licence", "CC-BY-4.0").stdout
    assert "Created project lab/study" in out

    run("project", "grant", "lab/study", "partner", "--role", "viewer")
    grants = run_json(run, "project", "grants", "lab/study")
    assert [(g["org"], g["role"]) for g in grants] == [("partner", "viewer")]
    assert "partner" in run("project", "grants", "lab/study").stdout

    shown = run_json(run, "project", "show", "lab/study")
    assert shown["visibility"] == "public" and shown["licence"] == "CC-BY-4.0"
    assert run_json(run, "project", "show", str(shown["id"]))["full_name"] == "lab/study"
    assert [p["full_name"] for p in run_json(run, "project", "list", "--org", "lab")] == [
        "lab/study"
    ]
    assert [m["username"] for m in run_json(run, "org", "members", "lab")] == ["admin"]
    run("project", "update", "lab/study", "--private", "--description", "Study data")
    assert run_json(run, "project", "show", "lab/study")["visibility"] == "private"

    run("project", "revoke", "lab/study", "partner")
    assert run_json(run, "project", "grants", "lab/study") == []
    audit = run_json(run, "project", "audit", "lab/study")
    assert {"project.create", "project.update"} <= {e["action"] for e in audit}


def test_members_service_accounts_and_delete(run: Run, admin_env: Server) -> None:
    run("org", "create", "lab")
    run("user", "create", "carol", "--password", "carol-password")
    run("org", "add-member", "lab", "carol", "--role", "maintainer")
    assert {m["username"]: m["role"] for m in run_json(run, "org", "members", "lab")} == {
        "admin": "owner",
        "carol": "maintainer",
    }
    run("org", "remove-member", "lab", "carol")
    account = run_json(run, "org", "service-account", "create", "lab", "bot", "--role", "viewer")
    assert account["username"] == "lab.bot"
    token = run_json(run, "org", "service-account", "token", "lab", "bot", "--scope", "read")
    assert run_json(run, "--token", token["token"], "whoami")["username"] == "lab.bot"

    run("project", "create", "lab/study")
    run("project", "delete", "lab/study", "--yes")
    assert run_json(run, "project", "list") == []


def test_invalid_configuration(run: Run, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENMAAS_PORT", "eighty")
    result = run("db", "current", code=1)
    assert result.stderr.startswith("error: invalid configuration: OPENMAAS_PORT: ")


def test_usage_errors_exit_2(run: Run, admin_env: Server) -> None:
    result = run("project", "create", "no-slash", code=2)
    assert "ORG/NAME" in result.stderr
    run("project", "grant", "lab/study", "partner", "--role", "emperor", code=2)
    run("project", "update", "lab/study", code=2)


# Datasets ------------------------------------------------------------------------------


def test_dataset_upload_list_show_profile(
    run: Run, project: str, csv_file: Path, tmp_path: Path
) -> None:
    result = run(
        "dataset", "upload", project, str(csv_file), "--name", "toy",
        "--tag", "demo", "--tag", "tabular", "--target", "label",
        "--type", "colour=categorical", "--description", "A toy table", "--json",
    )  # fmt: skip
    created = json.loads(result.stdout)  # --json: nothing but JSON on stdout
    dataset, version = created["dataset"], created["version"]
    assert dataset["name"] == "toy" and sorted(dataset["tags"]) == ["demo", "tabular"]
    assert version["n_rows"] == 60
    kinds = {c["name"]: c["kind"] for c in version["columns"]}
    assert kinds == {
        "x": "numeric",
        "colour": "categorical",
        "label": "categorical",
        "day": "datetime",
    }

    listed = run_json(run, "dataset", "list", "--project", project, "--tag", "demo")
    assert [d["id"] for d in listed] == [dataset["id"]]
    assert run_json(run, "dataset", "list", "--q", "nothing-like-it") == []

    out = run("dataset", "show", str(dataset["id"])).stdout
    types = {c["name"]: c["dtype"] for c in version["columns"]}
    for text in ("lab/study", "A toy table", "colour", "categorical", "60", types["day"]):
        assert text in out
    assert run_json(run, "dataset", "show", str(dataset["id"]))["version"]["version"] == 1

    profile = run_json(run, "dataset", "profile", str(dataset["id"]))
    assert profile["n_rows"] == 60 and set(profile["columns"]) == set(kinds)
    out = run("dataset", "profile", str(dataset["id"])).stdout
    assert "numeric" in out and "neg (40)" in out  # label's top value and its count


def test_dataset_download_append_and_curate(
    run: Run, dataset_id: int, csv_file: Path, tmp_path: Path
) -> None:
    original = pd.read_csv(csv_file)
    ds = str(dataset_id)
    run("dataset", "download", ds, str(tmp_path / "out.csv"))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out.csv"), original)
    info = run_json(run, "dataset", "download", ds, str(tmp_path / "out.parquet"))
    assert info["format"] == "parquet" and info["version"] == 1
    parquet = pd.read_parquet(tmp_path / "out.parquet")
    parquet["day"] = parquet["day"].astype(str)  # stored as a date
    pd.testing.assert_frame_equal(parquet, original, check_dtype=False)

    version = run_json(run, "dataset", "append", ds, str(csv_file), "--note", "more")
    assert version["version"] == 2 and version["n_rows"] == 120
    assert [v["version"] for v in run_json(run, "dataset", "versions", ds)] == [1, 2]
    folder = tmp_path / "downloads"
    folder.mkdir()
    run("dataset", "download", ds, str(folder), "--version", "1", "--format", "csv")
    assert len(pd.read_csv(folder / "toy-v1.csv")) == 60

    run("dataset", "update", ds, "--licence", "CC0-1.0", "--tag", "fresh")
    run("dataset", "deprecate", ds, "--reason", "superseded")
    shown = run_json(run, "dataset", "show", ds)["dataset"]
    assert shown["licence"] == "CC0-1.0" and shown["tags"] == ["fresh"]
    assert shown["deprecation_reason"] == "superseded"
    run("dataset", "undeprecate", ds)
    run("dataset", "delete", ds, input="n\n", code=1)  # declined
    run("dataset", "delete", ds, "--yes")
    assert run_json(run, "dataset", "list") == []


def test_unknown_dataset_is_one_red_line(run: Run, admin_env: Server) -> None:
    result = run("dataset", "show", "999", code=1)
    assert result.stdout == ""
    assert result.stderr == "error: dataset not found (not_found)\n"
    assert "Traceback" not in result.output


def test_unreachable_server(run: Run, home: Path) -> None:
    result = run("--url", "http://127.0.0.1:9", "dataset", "list", code=1)
    assert result.stderr.startswith("error: cannot reach http://127.0.0.1:9: ")
    assert "Traceback" not in result.output


# Tasks ---------------------------------------------------------------------------------


def test_task_create_show_splits(run: Run, project: str, dataset_id: int, tmp_path: Path) -> None:
    task = run_json(
        run, "task", "create", project, "--name", "toy-cv", "--dataset", str(dataset_id),
        "--type", "binary", "--target", "label", "--folds", "3", "--inner-folds", "2",
        "--seed", "7",
    )  # fmt: skip
    assert task["task_type"] == "binary" and task["n_rows"] == 60
    protocol = task["spec"]["protocol"]
    assert protocol["outer"] == {"method": "kfold", "k": 3}
    assert protocol["inner_folds"] == 2 and protocol["seed"] == 7

    shown = run_json(run, "task", "show", str(task["id"]))
    assert shown["spec"] == task["spec"]
    out = run("task", "show", str(task["id"])).stdout
    assert "kfold k=3; 2 inner folds; seed 7; stratified by label" in out
    listed = run_json(run, "task", "list", "--dataset", str(dataset_id), "--type", "binary")
    assert [t["name"] for t in listed] == ["toy-cv"]

    summary = run_json(run, "task", "splits", str(task["id"]))
    assert [f["fold"] for f in summary] == [0, 1, 2]
    assert sum(f["test"] for f in summary) == 60
    for fold in summary:
        assert fold["train"] + fold["test"] == 60
        assert sum(fold["inner_validation"]) == fold["train"]
    assert "outer fold" in run("task", "splits", str(task["id"])).stdout

    dest = tmp_path / "splits.parquet"
    run("task", "splits", str(task["id"]), str(dest))
    frame = pd.read_parquet(dest)
    assert list(frame.columns[:2]) == ["row", "outer"] and len(frame) == 60

    run("task", "delete", str(task["id"]), "--yes")
    assert run_json(run, "task", "list") == []


def test_task_from_spec_file_with_overrides(
    run: Run, project: str, dataset_id: int, tmp_path: Path
) -> None:
    spec = {
        "type": "binary",
        "target_columns": ["label"],
        "protocol": {"outer": {"method": "holdout", "test_fraction": 0.5}, "seed": 1},
    }
    file = tmp_path / "spec.json"
    file.write_text(json.dumps(spec))
    task = run_json(
        run, "task", "create", project, "-n", "half", "-d", str(dataset_id),
        "--spec-file", str(file), "--test-fraction", "0.25", "--no-stratify",
    )  # fmt: skip
    protocol = task["spec"]["protocol"]
    assert protocol["outer"] == {"method": "holdout", "test_fraction": 0.25}
    assert protocol["seed"] == 1 and protocol["stratify"] is False
    summary = run_json(run, "task", "splits", str(task["id"]))
    assert [(f["train"], f["test"]) for f in summary] == [(45, 15)]


def test_task_errors(run: Run, project: str, dataset_id: int) -> None:
    base = ("task", "create", project, "-n", "t", "-d", str(dataset_id), "--type", "binary")
    result = run(*base, "--target", "lable", code=1)
    assert result.stderr.startswith("error: unknown target column 'lable'; did you mean 'label'?")
    result = run(*base, "--target", "label", "--outer", "kfold", "--test-fraction", "0.2", code=2)
    assert "--test-fraction does not apply to a kfold split" in result.stderr


# Local administration --------------------------------------------------------------------


def test_db_upgrade_current_and_bootstrap(run: Run, home: Path) -> None:
    assert "not initialised" in run("db", "current").stdout
    assert run_json(run, "db", "current")["revision"] is None
    revision = run_json(run, "db", "upgrade")["revision"]
    assert revision
    assert run_json(run, "db", "current")["revision"] == revision

    boot = run_json(run, "admin", "bootstrap", "--username", "root", "--password", "root-password")
    assert boot["created"] is True and boot["username"] == "root"
    assert boot["password"] == "root-password" and boot["token"].startswith("om_")
    saved = home / "admin-credentials.json"
    assert oct(saved.stat().st_mode & 0o777) == "0o600"
    again = run("admin", "bootstrap")  # what `make up` prints on every start
    assert "root-password" in again.stdout and boot["token"] in again.stdout
    assert run_json(run, "admin", "bootstrap")["created"] is False
    saved.unlink()
    assert "an admin already exists (root)" in run("admin", "bootstrap").stderr


def test_bootstrap_prints_generated_password(run: Run, home: Path) -> None:
    out = run("admin", "bootstrap").stdout
    assert "admin" in out and "om_" in out


def test_gc_requires_schema(run: Run, home: Path) -> None:
    result = run("gc", "--dry-run", code=1)
    assert result.stderr == (
        "error: the database is not initialised: run `openmaas db upgrade` first (unavailable)\n"
    )


def test_gc_dry_run_lists_only_unreferenced_blobs(
    run: Run, server: Server, dataset_id: int
) -> None:
    orphan = server.platform.artifacts.put_stream([b"nobody refers to me"]).digest
    out = run_json(run, "gc", "--dry-run", "--grace-minutes", "0")
    assert out == {"dry_run": True, "blobs": [orphan]}
    assert server.platform.artifacts.exists(orphan)
    assert run_json(run, "gc", "--dry-run")["blobs"] == []  # within the grace period
    run("gc", "--grace-minutes", "0")
    assert not server.platform.artifacts.exists(orphan)


def test_server_prepares_then_runs_uvicorn(
    run: Run, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    run("server", "--port", "8123")
    [(target, kw)] = calls
    assert target == "openmaas.api.app:app_from_env" and kw["factory"] is True
    assert kw["port"] == 8123 and kw["host"] == "127.0.0.1" and kw["workers"] == 1
    assert run_json(run, "db", "current")["revision"]  # migrated before serving


def test_demo_load_needs_the_demo_module(
    run: Run, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "openmaas.demo", None)
    result = run("demo", "load", code=1)
    assert result.stderr == "error: demo content is not part of this installation (unavailable)\n"


def test_demo_load(run: Run, home: Path) -> None:
    first = run_json(run, "demo", "load")
    assert first["datasets"] and first["datasets"] == first["tasks"]
    again = run("demo", "load").stdout
    assert "datasets" in again
    assert run_json(run, "demo", "load")["datasets"] == []  # idempotent
