"""The demo project: scikit-learn's bundled datasets, each with one task.

Loaded by ``make up`` (``openmaas demo load``) into the public project
``demo/benchmarks``. Idempotent: what already exists is left alone. Uses only
data shipped inside scikit-learn, so it needs no network.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select

from openmaas.domain import datasets, orgs, projects, tasks
from openmaas.domain.context import Platform
from openmaas.domain.identity import bootstrap_admin, principal_for_user
from openmaas.errors import NotFound
from openmaas.ml.tasks import TaskSpec
from openmaas.store.metadata.tables import Dataset, Organization, Project, Task

ORG = "demo"
PROJECT = "benchmarks"

# name -> (loader, task type, metric list, description)
DEMOS: dict[str, tuple[str, str, list[str], str]] = {
    "breast_cancer": (
        "load_breast_cancer",
        "binary",
        ["roc_auc", "accuracy", "log_loss"],
        "Wisconsin diagnostic breast cancer: 569 tumours, 30 features, malignant or benign.",
    ),
    "wine": (
        "load_wine",
        "multiclass",
        ["accuracy", "log_loss"],
        "Chemical analysis of 178 wines from three cultivars.",
    ),
    "digits": (
        "load_digits",
        "multiclass",
        ["accuracy", "log_loss"],
        "1,797 8x8 images of handwritten digits.",
    ),
    "diabetes": (
        "load_diabetes",
        "regression",
        ["rmse", "mae", "r2"],
        "Disease progression one year after baseline for 442 diabetes patients.",
    ),
}


def _frame(loader: str) -> Any:
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, loader)(as_frame=True)
    frame = bunch.frame.copy()
    frame.columns = [
        str(c).replace(" ", "_").replace("(", "").replace(")", "") for c in frame.columns
    ]
    if "target" in frame and loader != "load_diabetes":
        names = getattr(bunch, "target_names", None)
        if names is not None:
            frame["target"] = [str(names[int(i)]) for i in frame["target"]]
    return frame


def load_demo(platform: Platform) -> dict[str, Any]:
    """Create the demo organisation, project, datasets and tasks that are missing."""
    admin = bootstrap_admin(platform).user
    ctx = platform.as_(principal_for_user(platform, admin.id))
    with platform.store.read() as s:
        org = s.scalar(select(Organization).where(Organization.name == ORG))
    if org is None:
        orgs.create(ctx, ORG, display_name="OpenMaaS demo")
        ctx = platform.as_(principal_for_user(platform, admin.id))
    with platform.store.read() as s:
        project = s.scalar(
            select(Project)
            .join(Organization)
            .where(Organization.name == ORG, Project.name == PROJECT)
        )
    if project is None:
        project = projects.create(
            ctx,
            ORG,
            PROJECT,
            visibility="public",
            description="Classic scikit-learn datasets with one benchmark task each.",
            licence="BSD-3-Clause (scikit-learn bundled data)",
        )
    created: dict[str, Any] = {"project_id": project.id, "datasets": [], "tasks": []}
    for name, (loader, task_type, metrics, description) in DEMOS.items():
        with platform.store.read() as s:
            ds_id = s.scalar(
                select(Dataset.id).where(Dataset.project_id == project.id, Dataset.name == name)
            )
            has_task = s.scalar(
                select(Task.id).where(Task.project_id == project.id, Task.name == name)
            )
        if ds_id is None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / f"{name}.parquet"
                _frame(loader).to_parquet(path, index=False)
                view, _ = datasets.create(
                    ctx,
                    project.id,
                    name,
                    path,
                    "parquet",
                    card=datasets.Card(
                        description=description,
                        source=f"sklearn.datasets.{loader}",
                        licence="BSD-3-Clause",
                        tags=["demo", "sklearn", task_type],
                    ),
                    target="target",
                )
            ds_id = view.dataset.id
            created["datasets"].append(name)
        if has_task is None:
            spec = TaskSpec.model_validate(
                {
                    "type": task_type,
                    "target_columns": ["target"],
                    "metrics": metrics,
                    "protocol": {"outer": {"method": "holdout", "test_fraction": 0.2}},
                }
            )
            tasks.create(
                ctx,
                project.id,
                name,
                ds_id,
                spec,
                description=f"{description} Holdout 20%, inner 5-fold.",
            )
            created["tasks"].append(name)
    return created


def demo_project_id(platform: Platform) -> int:
    with platform.store.read() as s:
        pid = s.scalar(
            select(Project.id)
            .join(Organization)
            .where(Organization.name == ORG, Project.name == PROJECT)
        )
    if pid is None:
        raise NotFound("the demo project is not loaded: run `openmaas demo load`")
    return pid
