"""Tasks: definition, stored splits, immutability and re-basing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from openmaas.errors import Conflict, InvalidInput


@pytest.fixture
def dataset(world):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"x": rng.normal(size=200), "g": rng.integers(0, 20, 200), "y": rng.integers(0, 2, 200)}
    )
    frame["y"] = np.where(frame["y"] == 1, "yes", "no")
    return world.owner.datasets.upload(world.project_id, frame, name="toy")


def test_create_task_and_fetch_splits(world, dataset) -> None:
    task = world.owner.tasks.create(
        world.project_id,
        "toy-cv",
        dataset,
        type="binary",
        target="y",
        protocol={"outer": {"method": "kfold", "k": 4}, "inner_folds": 3, "seed": 1},
    )
    assert task.task_type == "binary" and task.version == 1 and task.dataset_version == 1
    assert task.spec["metrics"]  # defaults filled in
    splits = world.owner.tasks.splits(task)
    assert len(splits) == 200 and sorted(splits["outer"].unique()) == [0, 1, 2, 3]
    again = world.owner.tasks.splits(task)
    pd.testing.assert_frame_equal(splits, again)
    assert [t.name for t in world.owner.tasks.list(project=world.project_id)] == ["toy-cv"]


def test_group_split_keeps_groups_together(world, dataset) -> None:
    task = world.owner.tasks.create(
        world.project_id,
        "grouped",
        dataset,
        type="binary",
        target="y",
        protocol={"outer": {"method": "group", "group_column": "g", "k": 4}},
    )
    splits = world.owner.tasks.splits(task)
    frame = world.owner.datasets.to_pandas(dataset)
    folds = (
        pd.DataFrame({"g": frame["g"], "outer": splits["outer"]}).groupby("g")["outer"].nunique()
    )
    assert (folds == 1).all()


def test_bad_task_definitions(world, dataset) -> None:
    with pytest.raises(InvalidInput, match="nope"):
        world.owner.tasks.create(world.project_id, "t", dataset, type="binary", target="nope")
    with pytest.raises(InvalidInput, match="spec"):
        world.owner.tasks.create(world.project_id, "t", dataset, type="weird", target="y")
    with pytest.raises(InvalidInput):
        world.owner.tasks.create(world.project_id, "t", dataset, type="regression", target="y")


def test_rebase_keeps_old_folds(world, dataset) -> None:
    task = world.owner.tasks.create(world.project_id, "toy", dataset, type="binary", target="y")
    old = world.owner.tasks.splits(task)
    rng = np.random.default_rng(1)
    more = pd.DataFrame(
        {"x": rng.normal(size=50), "g": rng.integers(0, 20, 50), "y": rng.choice(["yes", "no"], 50)}
    )
    world.owner.datasets.append(dataset, more)
    new = world.owner.tasks.rebase(task)
    assert new.version == 2 and new.parent_id == task.id and new.dataset_version == 2
    splits = world.owner.tasks.splits(new)
    assert len(splits) == 250
    pd.testing.assert_frame_equal(splits.iloc[:200].reset_index(drop=True), old)
    with pytest.raises(Conflict, match="re-based versions"):
        world.owner.tasks.delete(task)


def test_task_definition_is_immutable(world, dataset, http) -> None:
    task = world.owner.tasks.create(world.project_id, "toy", dataset, type="binary", target="y")
    r = http.patch(
        f"/api/v1/tasks/{task.id}",
        json={"spec": {"type": "regression"}},
        headers={"Authorization": f"Bearer {world.owner_token}"},
    )
    assert r.status_code == 422
    assert world.owner.tasks.update(task, description="better").description == "better"
