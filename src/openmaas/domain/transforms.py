"""Compression as version transforms: ONNX export, int8 quantisation, distillation, as jobs.

A transform makes a new version of the same model from an existing one, with
``parent_id`` pointing back and ``transform`` saying what was done and what it
gained and cost (``{"kind", "params", "report"}``, the report from
:func:`openmaas.ml.compress.compression_report`). The work (loading, exporting,
fitting a student, timing) runs in a ``transform`` job
(:mod:`openmaas.jobs.handlers.transform`); here are only the cheap checks that
make a hopeless request a 4xx that queues nothing:

- ``onnx``: a ``pipeline`` (of an algorithm with an ONNX converter) or
  ``lightgbm`` version whose inputs are all numbers;
- ``quantize``: an ``onnx`` version of a dnn, or a ``pipeline`` of a dnn
  (exported first); tree ensembles and linear models have no weight matrices;
- ``distill``: any version but a pickle, with a task to take training rows
  from: the version's own (its lineage) or ``task_id``.

The evaluation rows are the test part of the task's last outer fold (a
holdout's test rows); the metric is the task's primary one. A version with no
task and no ``task_id`` gets a report of size and latency only.

Who may: contributors of the model's project (``create``), as for any new
version; the job is readable like the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from openmaas.domain import audit
from openmaas.domain.context import Ctx
from openmaas.domain.jobs import enqueue
from openmaas.domain.policy import Action
from openmaas.domain.projects import authorize
from openmaas.errors import InvalidInput, NotFound
from openmaas.ml.flavors import Signature
from openmaas.store.metadata.tables import DatasetVersion, Job, Model, ModelVersion, Run, Task

KIND = "transform"
KINDS = ("onnx", "quantize", "distill")
STUDENTS = ("lightgbm", "mlp", "dnn")
ONNX_ALGORITHMS = ("lightgbm", "linear", "random_forest", "extra_trees", "dnn")
TASK_TYPES = ("binary", "multiclass", "regression")
EXPORTABLE_KINDS = ("numeric", "boolean")
PARAMS: dict[str, frozenset[str]] = {
    "onnx": frozenset({"task_id"}),
    "quantize": frozenset({"task_id", "per_channel"}),
    "distill": frozenset({"task_id", "student", "student_params"}),
}


def _bad(message: str, field: str = "params") -> InvalidInput:
    return InvalidInput(message, details={"field": field})


def _check_params(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    if kind not in KINDS:
        raise _bad(f"unknown transform {kind!r}; use one of {', '.join(KINDS)}", "kind")
    if not isinstance(params, Mapping):
        raise _bad("params must be an object")
    unknown = sorted(set(params) - PARAMS[kind])
    if unknown:
        allowed = ", ".join(sorted(PARAMS[kind]))
        raise _bad(f"unknown parameter {unknown[0]!r} for {kind}; accepted: {allowed}")
    out = dict(params)
    task_id = out.get("task_id")
    if task_id is not None and (
        isinstance(task_id, bool) or not isinstance(task_id, int) or not 1 <= task_id < 2**31
    ):
        raise _bad("task_id must be a task id (a positive integer)")
    if "per_channel" in out and not isinstance(out["per_channel"], bool):
        raise _bad("per_channel must be true or false")
    if kind == "distill":
        student = out.setdefault("student", "lightgbm")
        if student not in STUDENTS:
            raise _bad(f"unknown student {student!r}; use one of {', '.join(STUDENTS)}")
        student_params = out.setdefault("student_params", {})
        if not isinstance(student_params, Mapping):
            raise _bad("student_params must be an object of hyperparameters")
        _check_student(student, dict(student_params))
    return out


def _check_student(student: str, params: dict[str, Any]) -> None:
    from openmaas.ml.catalog.registry import check_params, get_algorithm
    from openmaas.ml.compress import STUDENT_DEFAULTS

    cls = get_algorithm("dnn" if student == "mlp" else student)
    check_params(cls, {**STUDENT_DEFAULTS[cls.name], **params})


def _algorithm(s: Session, version: ModelVersion) -> str | None:
    """The algorithm a version holds, when its lineage says (a run, or an earlier transform)."""
    if version.transform and version.transform.get("algorithm"):
        return str(version.transform["algorithm"])
    if version.flavor == "lightgbm":
        return "lightgbm"
    if version.run_id is not None and version.flavor == "pipeline":
        return s.scalar(select(Run.algorithm).where(Run.id == version.run_id))
    return None


def _check_version(kind: str, version: ModelVersion, algorithm: str | None, sig: Signature) -> None:
    flavor = version.flavor
    name = f"version {version.version} ({flavor}"
    name += f", {algorithm})" if algorithm else ")"
    if flavor == "pickle":
        raise _bad(f"{name} is a pickle: transforms never load pickles", "version")
    if kind in ("onnx", "quantize"):
        bad = [c for c in sig.inputs if c.kind not in EXPORTABLE_KINDS]
        if bad:
            raise _bad(
                f"cannot export {name} to ONNX: input {bad[0].name!r} is {bad[0].kind}; "
                "ONNX export takes numeric and boolean inputs only",
                "version",
            )
    if kind == "onnx":
        if flavor not in ("pipeline", "lightgbm"):
            raise _bad(
                f"cannot export {name} to ONNX: only pipeline and lightgbm versions export",
                "version",
            )
        if flavor == "pipeline" and algorithm is not None and algorithm not in ONNX_ALGORITHMS:
            raise _bad(
                f"cannot export {name} to ONNX: {algorithm} has no converter; supported: "
                f"{', '.join(ONNX_ALGORITHMS)}",
                "version",
            )
    elif kind == "quantize":
        if flavor not in ("onnx", "pipeline") or (algorithm is not None and algorithm != "dnn"):
            raise _bad(
                f"cannot quantise {name}: int8 quantisation applies to the weight matrices of "
                "a dnn (a dnn pipeline, or its ONNX export); trees and linear models have none",
                "version",
            )
        if flavor == "pipeline" and algorithm is None:
            raise _bad(f"cannot quantise {name}: its algorithm is unknown", "version")


def _task(ctx: Ctx, s: Session, task_id: int, sig: Signature) -> Task:
    task = s.get(Task, task_id)
    if task is None:
        raise NotFound("task not found", details={"field": "task_id"})
    authorize(ctx, s, task.project_id, Action.read, kind="task")
    if task.task_type not in TASK_TYPES:
        raise _bad(
            f"task {task.name!r} is a {task.task_type} task; transforms evaluate on "
            f"{', '.join(TASK_TYPES)} tasks",
            "task_id",
        )
    dv = s.get(DatasetVersion, task.dataset_version_id)
    assert dv is not None
    have = {c["name"] for c in dv.columns}
    missing = [n for n in sig.names if n not in have]
    if missing:
        raise _bad(
            f"task {task.name!r} has no column {missing[0]!r}, which the model reads", "task_id"
        )
    return task


def create(
    ctx: Ctx, model_id: int, version: int, kind: str, params: Mapping[str, Any] | None = None
) -> Job:
    """Queue a ``kind`` transform of ``version`` of the model; InvalidInput before queueing."""
    params = _check_params(kind, params or {})
    with ctx.store.write() as s:
        model = s.get(Model, model_id)
        if model is None:
            raise NotFound("model not found")
        authorize(ctx, s, model.project_id, Action.create, kind="model")
        row = s.scalar(
            select(ModelVersion).where(
                ModelVersion.model_id == model.id, ModelVersion.version == version
            )
        )
        if row is None:
            raise NotFound(f"model {model.name!r} has no version {version}")
        sig = Signature.from_dict(row.signature)
        algorithm = _algorithm(s, row)
        _check_version(kind, row, algorithm, sig)
        task_id = params.get("task_id") or row.task_id
        if kind == "distill" and task_id is None:
            raise _bad(
                f"version {row.version} has no task to take training rows from; give task_id",
                "task_id",
            )
        task = _task(ctx, s, int(task_id), sig) if task_id is not None else None
        payload = {
            "model_id": model.id, "model": model.name, "version": row.version,
            "version_id": row.id, "kind": kind, "params": params, "algorithm": algorithm,
            "task_id": task.id if task else None,
        }  # fmt: skip
        job = enqueue(
            s, KIND, payload, project_id=model.project_id, created_by=ctx.principal.user_id,
            max_attempts=2,
        )  # fmt: skip
        audit.record(
            s, ctx.principal, "model.transform", "job", job.id, project_id=model.project_id,
            details={k: v for k, v in payload.items() if k != "params"},
        )  # fmt: skip
        return job


def get(ctx: Ctx, job_id: int) -> Job:
    """A transform job, for whoever may read its model's project (404 otherwise)."""
    with ctx.store.read() as s:
        job = s.get(Job, job_id)
        if job is None or job.kind != KIND or job.project_id is None:
            raise NotFound("transform job not found")
        authorize(ctx, s, job.project_id, Action.read, kind="transform job")
        return job
