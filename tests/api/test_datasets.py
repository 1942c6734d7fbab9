"""Dataset upload, versions, profile, download, search and lifecycle through the SDK."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from openmaas.domain.blobs import gc
from openmaas.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge, PermissionDenied
from openmaas.store.metadata.tables import Dataset, DatasetVersion
from tests.api.conftest import make_user

CSV = (
    "id,age,city,score,ok,when\n"
    "1,34,Paris,0.5,true,2024-01-01\n"
    "2,,Lyon,1.5,false,2024-01-02\n"
    "3,51,Paris,,true,2024-01-03\n"
    "4,29,Nice,2.5,false,2024-01-04\n"
)


def _write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _blobs(platform) -> int:
    return sum(1 for _ in platform.artifacts.iter_blobs())


def test_upload_profile_download_roundtrip(world, tmp_path) -> None:
    ds = world.owner.datasets.upload(
        world.project_id,
        _write(tmp_path, CSV),
        name="people",
        description="toy",
        licence="CC-BY-4.0",
        citation="Doe 2024",
        tags=["Toy", "people"],
        target="score",
    )
    assert ds.name == "people" and ds.latest_version == 1 and ds.tags == ["people", "toy"]
    v = world.owner.datasets.version(ds)
    assert v.n_rows == 4 and v.n_columns == 6 and len(v.digest) == 64
    kinds = {c["name"]: c["kind"] for c in v.columns}
    assert kinds["age"] == "numeric" and kinds["ok"] == "boolean" and kinds["when"] == "datetime"
    profile = world.owner.datasets.profile(ds)
    age = profile["columns"]["age"] if "columns" in profile else profile["age"]
    assert age["missing"] == 1
    df = world.owner.datasets.to_pandas(ds)
    assert list(df.columns) == ["id", "age", "city", "score", "ok", "when"]
    assert df["age"].isna().sum() == 1 and df["score"].iloc[1] == 1.5
    out = world.owner.datasets.download(ds, tmp_path / "back.csv", format="csv")
    back = pd.read_csv(out)
    assert len(back) == 4 and list(back["city"]) == ["Paris", "Lyon", "Paris", "Nice"]


def test_type_override(world, tmp_path) -> None:
    ds = world.owner.datasets.upload(
        world.project_id, _write(tmp_path, CSV), name="people", types={"id": "categorical"}
    )
    kinds = {c["name"]: c["kind"] for c in world.owner.datasets.version(ds).columns}
    assert kinds["id"] == "categorical"


def test_upload_dataframe_and_jsonl(world, tmp_path) -> None:
    frame = pd.DataFrame({"x": np.arange(10.0), "y": list("ababababab")})
    ds = world.owner.datasets.upload(world.project_id, frame, name="frame")
    assert world.owner.datasets.version(ds).n_rows == 10
    jsonl = _write(tmp_path, '{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n', "d.jsonl")
    ds2 = world.owner.datasets.upload(world.project_id, jsonl, name="lines")
    assert world.owner.datasets.to_pandas(ds2)["a"].tolist() == [1, 2]


def test_append_makes_a_new_version(world, tmp_path) -> None:
    ds = world.owner.datasets.upload(world.project_id, _write(tmp_path, CSV), name="people")
    more = "id,age,city,score,ok,when\n5,40,Lille,3.5,true,2024-01-05\n"
    v2 = world.owner.datasets.append(ds, _write(tmp_path, more, "more.csv"), note="jan 5")
    assert v2.version == 2 and v2.n_rows == 5 and v2.parent_version == 1
    assert world.owner.datasets.to_pandas(ds, 1).shape[0] == 4
    assert world.owner.datasets.to_pandas(ds, 2)["city"].iloc[-1] == "Lille"
    assert [v.version for v in world.owner.datasets.versions(ds)] == [1, 2]


def test_search_by_name_and_tag(world, tmp_path) -> None:
    world.owner.datasets.upload(world.project_id, _write(tmp_path, CSV), name="alpha", tags=["x"])
    world.owner.datasets.upload(world.project_id, _write(tmp_path, CSV), name="beta", tags=["y"])
    assert [d.name for d in world.owner.datasets.list(q="alp")] == ["alpha"]
    assert [d.name for d in world.owner.datasets.list(tags=["y"])] == ["beta"]
    assert world.owner.datasets.list(project=world.project_id).total == 2


def test_deprecate_and_delete(world, tmp_path, http) -> None:
    ds = world.owner.datasets.upload(world.project_id, _write(tmp_path, CSV), name="people")
    d = world.owner.datasets.deprecate(ds, "superseded by people-v2")
    assert d.deprecated and d.deprecation_reason == "superseded by people-v2"
    assert world.owner.datasets.to_pandas(ds).shape[0] == 4  # still readable
    assert world.owner.datasets.list(include_deprecated=False).total == 0
    viewer = make_user(world.admin, http, "vic")
    world.owner.orgs.set_member("lab", "vic", "viewer")
    with pytest.raises(PermissionDenied):
        viewer.datasets.delete(ds)
    world.owner.datasets.delete(ds)
    with pytest.raises(NotFound, match="dataset not found"):
        world.owner.datasets.get(ds)


def test_contributor_edits_own_but_not_others(world, tmp_path, http) -> None:
    carl = make_user(world.admin, http, "carl")
    world.owner.orgs.set_member("lab", "carl", "contributor")
    mine = carl.datasets.upload(world.project_id, _write(tmp_path, CSV), name="mine")
    theirs = world.owner.datasets.upload(world.project_id, _write(tmp_path, CSV), name="theirs")
    assert carl.datasets.update(mine, description="ok").description == "ok"
    with pytest.raises(PermissionDenied, match="needs the maintainer role; you have contributor"):
        carl.datasets.update(theirs, description="no")


def test_duplicate_dataset_name(world, tmp_path) -> None:
    world.owner.datasets.upload(world.project_id, _write(tmp_path, CSV), name="people")
    with pytest.raises(Conflict, match="dataset 'people' already exists in this project"):
        world.owner.datasets.upload(world.project_id, _write(tmp_path, CSV), name="people")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"a,b\n1,2,3\n", "row"),
        (b"a,a\n1,2\n", "duplicate"),
        (b"a,b\n1,\xff\xfe\n", "UTF-8"),
        (b"a,b\n1,inf\n", "inf"),
    ],
)
def test_bad_files_leave_nothing_behind(world, tmp_path, platform, content, message) -> None:
    before = _blobs(platform)
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match=message):
        world.owner.datasets.upload(world.project_id, path, name="bad")
    with platform.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Dataset)) == 0
        assert s.scalar(select(func.count()).select_from(DatasetVersion)) == 0
    assert _blobs(platform) == before
    assert list(platform.settings.tmp_dir.iterdir()) == []


def test_upload_over_the_size_limit_is_413(world, tmp_path, platform) -> None:
    platform.settings.max_upload_bytes = 100
    path = _write(tmp_path, CSV * 10)
    with pytest.raises(PayloadTooLarge, match="the limit is 100 bytes"):
        world.owner.datasets.upload(world.project_id, path, name="big")


def test_truncated_upload_is_rejected(world, http) -> None:
    r = http.post(
        f"/api/v1/projects/{world.project_id}/datasets?name=t&format=csv",
        content=io.BytesIO(b"a,b\n1,2\n"),
        headers={"Authorization": f"Bearer {world.owner_token}", "Content-Length": "100"},
    )
    assert r.status_code in (400, 422)


def test_unknown_format_and_target(world, tmp_path, http) -> None:
    r = http.post(
        f"/api/v1/projects/{world.project_id}/datasets?name=t",
        content=CSV.encode(),
        headers={"Authorization": f"Bearer {world.owner_token}"},
    )
    assert r.status_code == 422 and "format=csv|parquet|jsonl" in r.json()["error"]["message"]
    with pytest.raises(InvalidInput, match="nope"):
        world.owner.datasets.upload(
            world.project_id, _write(tmp_path, CSV), name="t", target="nope"
        )


def test_hostile_dataset_name(world, tmp_path) -> None:
    with pytest.raises(InvalidInput, match=r"invalid name '\.\./\.\./etc/passwd'"):
        world.owner.datasets.upload(
            world.project_id, _write(tmp_path, CSV), name="../../etc/passwd"
        )


def test_gc_collects_blobs_of_deleted_datasets(world, tmp_path, platform) -> None:
    ds = world.owner.datasets.upload(world.project_id, _write(tmp_path, CSV), name="people")
    v = world.owner.datasets.version(ds)
    assert gc(platform, grace=timedelta(0)) == []
    world.owner.datasets.delete(ds)
    removed = gc(platform, grace=timedelta(0))
    assert v.digest in removed and len(removed) == 2  # the Parquet file and its profile
    assert not platform.artifacts.exists(v.digest)
