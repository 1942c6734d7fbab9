"""The ``transform`` job: a compressed copy of a model version, registered as a new version.

The payload (written by :mod:`openmaas.domain.transforms`, which checked it)
names the parent version, the transform and, when there is one, the task to
take rows from. The parent's files are laid out and loaded as they are served;
the transform runs (:mod:`openmaas.ml.compress`); both models are timed and
scored on the same rows; the result is registered with
:func:`openmaas.domain.models.add_version` as the job's creator, so the new
version is checked (it loads, it fits its signature) like any other.

Evaluation rows are the test part of the task's last outer fold (a holdout's
test rows); a student learns from that fold's training rows, so it never sees
what it is scored on. With no task, latency is timed on generated rows and the
report has no metric.

A retried attempt first looks for a version an earlier attempt of the same job
registered (``transform.job_id``), so a crash between registering and finishing
never makes two.
"""

from __future__ import annotations

import inspect
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sqlalchemy import select

from openmaas.domain import models
from openmaas.domain.datasets import materialize
from openmaas.domain.transforms import KIND
from openmaas.errors import InvalidInput, NotFound
from openmaas.jobs.kinds import register_kind
from openmaas.jobs.runner import JobContext
from openmaas.ml.flavors import Signature
from openmaas.ml.flavors.bundle import Bundle
from openmaas.ml.flavors.predictor import MAIN_FILE
from openmaas.ml.metrics import Metric, get_metric
from openmaas.ml.splits import Splits
from openmaas.ml.tasks import TaskSpec
from openmaas.store.metadata.tables import DatasetVersion, ModelFile, ModelVersion, Task

SYNTHETIC_ROWS = 1000
#: ONNX metadata telling serving that ``predictions`` are P(positive), as a bare
#: binary LightGBM booster (the parent) serves them, not labels.
PREDICTIONS_META = "openmaas.predictions"

Predict = Callable[[pd.DataFrame], Any]


@dataclass
class Native:
    """A loaded model behind one interface: DataFrames in (signature columns), arrays out."""

    obj: Any  # what export_onnx takes (a Pipeline, a Booster), or None
    proba: Predict | None  # (n, classes), columns in ``classes`` order
    predict: Predict  # labels or values
    classes: list[Any] | None

    @property
    def classifier(self) -> bool:
        return self.proba is not None


@dataclass
class EvalData:
    """A task's rows: features by signature name, targets, and the two parts used."""

    X: pd.DataFrame
    y: np.ndarray
    train: np.ndarray
    test: np.ndarray
    task_type: str
    metric: Metric
    classes: list[Any] | None


def transform(job: JobContext) -> dict[str, Any]:
    p = job.payload
    platform = job.platform
    done = _earlier(job)
    if done is not None:
        return done
    with platform.store.read() as s:
        parent = s.get(ModelVersion, int(p["version_id"]))
        if parent is None:
            raise NotFound(f"version {p['version']} of {p['model']!r} was deleted")
        files = list(s.scalars(select(ModelFile).where(ModelFile.version_id == parent.id)))
        task = s.get(Task, int(p["task_id"])) if p.get("task_id") else None
        dv = s.get(DatasetVersion, task.dataset_version_id) if task else None
    kind, params = str(p["kind"]), dict(p.get("params") or {})
    sig = Signature.from_dict(parent.signature)
    tmp = platform.settings.tmp_dir
    tmp.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"transform-{job.job_id}-", dir=tmp))
    try:
        parent_dir = models.materialize(platform, files, work / "parent")
        native = _native(parent.flavor, parent_dir, sig)
        data = None
        if task is not None and dv is not None:
            data = _eval_data(job, task, dv, sig, work)
            native = _aligned(native, data)
        job.log(f"{kind} of version {parent.version} of {p['model']!r} ({parent.flavor})")
        out = work / "new"
        out.mkdir()
        if kind == "distill":
            assert data is not None  # checked when queued
            compressed = _distill(job, native, data, sig, params, out)
            flavor = "pipeline"
        else:
            compressed = _onnx(job, kind, parent.flavor, parent_dir, native, sig, params, out)
            flavor = "onnx"
        new_sig = _signature(sig, out, flavor)
        report = _report(native, compressed, data, new_sig, parent.size_bytes, out)
        job.log(_summary(report))
        record = {"kind": kind, "params": params, "report": report, "job_id": job.job_id,
                  "algorithm": _algorithm(kind, p.get("algorithm"), params)}  # fmt: skip
        if task is not None:
            record["task_id"] = task.id
        view = models.add_version(
            job.as_creator(), int(p["model_id"]), Bundle(flavor, out, source="transform"),
            signature=new_sig, parent_id=parent.id, transform=record,
            description=f"{kind} of version {parent.version}",
        )  # fmt: skip
        return _result(view.version, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _earlier(job: JobContext) -> dict[str, Any] | None:
    """The result of a version an earlier attempt of this job registered, if any."""
    with job.platform.store.read() as s:
        rows = s.scalars(
            select(ModelVersion).where(ModelVersion.parent_id == int(job.payload["version_id"]))
        )
        for row in rows:
            if (row.transform or {}).get("job_id") == job.job_id:
                return _result(row, row.transform["report"])  # type: ignore[index]
    return None


def _result(version: ModelVersion, report: dict[str, Any]) -> dict[str, Any]:
    return {
        "version_id": version.id, "version": version.version, "flavor": version.flavor,
        "report": report,
    }  # fmt: skip


def _algorithm(kind: str, parent: str | None, params: dict[str, Any]) -> str | None:
    if kind == "distill":
        return "dnn" if params.get("student") in ("mlp", "dnn") else "lightgbm"
    return parent


# Loading --------------------------------------------------------------------------------


def _native(flavor: str, directory: Path, sig: Signature) -> Native:
    names = sig.names

    def matrix(X: pd.DataFrame) -> np.ndarray:
        return np.asarray(X[names].to_numpy(dtype=np.float64))

    if flavor == "pipeline":
        from openmaas.ml.catalog.persist import load_pipeline

        pipe = load_pipeline(directory)
        model = pipe.steps[-1][1]
        classes = getattr(model, "classes_", None)
        if classes is None:
            return Native(pipe, None, pipe.predict, None)
        return Native(pipe, pipe.predict_proba, pipe.predict, [_plain(c) for c in classes])
    if flavor == "lightgbm":
        import lightgbm as lgb

        booster = lgb.Booster(model_file=str(directory / MAIN_FILE["lightgbm"]))
        objective = str(booster.params.get("objective", ""))
        k = booster.num_model_per_iteration()

        def raw(X: pd.DataFrame) -> np.ndarray:
            return np.asarray(booster.predict(matrix(X), num_threads=1))

        if k > 1:
            return Native(booster, raw, lambda X: raw(X).argmax(axis=1), list(range(k)))
        if objective.startswith(("binary", "cross_entropy", "xentropy")):

            def proba(X: pd.DataFrame) -> np.ndarray:
                p = raw(X)
                return np.column_stack([1.0 - p, p])

            return Native(booster, proba, lambda X: (raw(X) > 0.5).astype(np.int64), [0, 1])
        return Native(booster, None, raw, None)
    if flavor == "onnx":
        from openmaas.ml.compress import OnnxPredictor

        onnx = OnnxPredictor((directory / MAIN_FILE["onnx"]).read_bytes())
        if onnx.classes is None:
            return Native(None, None, onnx.predict, None)
        return Native(None, onnx.predict_proba, onnx.predict, [_plain(c) for c in onnx.classes])
    if flavor == "skops":
        from openmaas.ml.catalog.persist import load_skops
        from openmaas.ml.flavors.predictor import SKOPS_EXTRA_TYPES

        est = load_skops(directory / MAIN_FILE["skops"], SKOPS_EXTRA_TYPES)
        classes = getattr(est, "classes_", None)
        if classes is None or not hasattr(est, "predict_proba"):
            return Native(None, None, lambda X: est.predict(matrix(X)), None)
        return Native(
            None, lambda X: est.predict_proba(matrix(X)), lambda X: est.predict(matrix(X)),
            [_plain(c) for c in classes],
        )  # fmt: skip
    raise InvalidInput(f"a {flavor} version cannot be transformed")


def _eval_data(
    job: JobContext, task: Task, dv: DatasetVersion, sig: Signature, work: Path
) -> EvalData:
    platform = job.platform
    spec = TaskSpec.model_validate(task.spec)
    path = materialize(platform.as_(), dv.digest, work / "data.parquet")
    frame = pq.read_table(path).to_pandas()
    with platform.artifacts.open(task.splits_digest) as f:
        splits = Splits.from_parquet(f)
    train, test = splits.train_test(splits.n_outer - 1)
    y = frame[spec.target_columns[0]].to_numpy()
    classes = None
    if spec.type in ("binary", "multiclass"):
        classes = [_plain(c) for c in np.unique(y)]
    job.log(f"task {task.name!r}: {len(train)} training rows, {len(test)} evaluation rows")
    metric = get_metric(spec.metrics[0])
    return EvalData(frame[sig.names], y, train, test, spec.type, metric, classes)


def _aligned(native: Native, data: EvalData) -> Native:
    """``native`` with probability columns in the task's class order.

    A model trained outside the platform may know its classes as codes
    ``0..k-1``; they are taken as the task's sorted labels, in order.
    """
    if not native.classifier or data.classes is None:
        if native.classifier != (data.classes is not None):
            kind = "classifier" if native.classifier else "regressor"
            raise InvalidInput(f"the model is a {kind} but the task is {data.task_type}")
        return native
    mine, theirs = list(native.classes or []), data.classes
    if mine == theirs:
        return native
    if sorted(map(str, mine)) == sorted(map(str, theirs)) and set(mine) == set(theirs):
        order = [mine.index(c) for c in theirs]
    elif len(mine) == len(theirs):
        order = list(range(len(mine)))
    else:
        raise InvalidInput(f"the model predicts {len(mine)} classes but the task has {len(theirs)}")
    proba = native.proba
    assert proba is not None
    labels = np.asarray(theirs, dtype=object)

    def aligned(X: pd.DataFrame) -> np.ndarray:
        return np.asarray(proba(X))[:, order]

    return Native(native.obj, aligned, lambda X: labels[aligned(X).argmax(axis=1)], theirs)


# Transforms -----------------------------------------------------------------------------


def _onnx(
    job: JobContext,
    kind: str,
    flavor: str,
    parent_dir: Path,
    native: Native,
    sig: Signature,
    params: dict[str, Any],
    out: Path,
) -> Native:
    from openmaas.ml.compress import OnnxPredictor, export_onnx, quantize

    if flavor == "onnx":
        model = (parent_dir / MAIN_FILE["onnx"]).read_bytes()
    else:
        model = export_onnx(native.obj, feature_names=sig.names)
        if flavor == "lightgbm" and native.classes == [0, 1] and native.obj is not None:
            model = _with_meta(model, PREDICTIONS_META, "probability")
    if kind == "quantize":
        model = quantize(model, per_channel=bool(params.get("per_channel", False)))
    (out / MAIN_FILE["onnx"]).write_bytes(model)
    onnx = OnnxPredictor(model)
    missing = [n for n in onnx.feature_names if n not in sig.names]
    if missing:
        raise InvalidInput(f"the exported model reads a column {missing[0]!r} the version lacks")
    job.log(f"{kind}: {len(model)} bytes")
    if onnx.classes is None:
        return Native(None, None, onnx.predict, None)
    return Native(None, onnx.predict_proba, onnx.predict, [_plain(c) for c in onnx.classes])


def _with_meta(model: bytes, key: str, value: str) -> bytes:
    import onnx

    proto = onnx.load_from_string(model)
    entry = proto.metadata_props.add()
    entry.key, entry.value = key, value
    data: bytes = proto.SerializeToString()
    return data


def _distill(
    job: JobContext,
    teacher: Native,
    data: EvalData,
    sig: Signature,
    params: dict[str, Any],
    out: Path,
) -> Native:
    from openmaas.ml.catalog.persist import save_pipeline
    from openmaas.ml.compress import distill

    student = str(params.get("student", "lightgbm"))
    X_train = data.X.iloc[data.train]
    job.log(f"distilling into a {student} student on {len(X_train)} rows of teacher predictions")
    predict = teacher.proba if teacher.proba is not None else teacher.predict
    pipe = distill(
        predict, X_train, data.task_type, student,  # type: ignore[arg-type]
        columns=[(c.name, c.kind) for c in sig.inputs], classes=data.classes,
        params=params.get("student_params") or {},
    )  # fmt: skip
    save_pipeline(pipe, out)
    if data.classes is None:
        return Native(pipe, None, pipe.predict, None)
    return Native(pipe, pipe.predict_proba, pipe.predict, data.classes)


# Reporting ------------------------------------------------------------------------------


def _signature(parent: Signature, out: Path, flavor: str) -> Signature:
    """The parent's signature, inputs in the order an ONNX model reads them."""
    if flavor != "onnx":
        return parent
    from openmaas.ml.compress import OnnxPredictor

    names = OnnxPredictor((out / MAIN_FILE["onnx"]).read_bytes()).feature_names
    by_name = {c.name: c for c in parent.inputs}
    return Signature(tuple(by_name[n] for n in names), parent.outputs)


def _report(
    native: Native,
    compressed: Native,
    data: EvalData | None,
    sig: Signature,
    size_before: int,
    out: Path,
) -> dict[str, Any]:
    from openmaas.ml.compress import artifact_size, compression_report, latency_per_row

    size_after = artifact_size(out)
    if data is None:
        rng = np.random.default_rng(0)
        X = pd.DataFrame(rng.normal(size=(SYNTHETIC_ROWS, len(sig.inputs))), columns=sig.names)
        before, after = _outputs(native), _outputs(compressed)
        latency = {"before": latency_per_row(before, X), "after": latency_per_row(after, X)}
        single = {"before": latency_per_row(before, X[:1], repeats=20),
                  "after": latency_per_row(after, X[:1], repeats=20)}  # fmt: skip
        report: dict[str, Any] = {
            "size_bytes": {"before": size_before, "after": size_after,
                           "ratio": _ratio(size_before, size_after)},
            "latency_per_row_s": {**latency, "speedup": _ratio(**latency)},
            "latency_one_row_s": {**single, "speedup": _ratio(**single)},
            "latency_batch_rows": len(X), "metric": None, "eval_rows": 0,
            "rows": "generated",
        }  # fmt: skip
    else:
        X, y = data.X.iloc[data.test], data.y[data.test]
        wants_scores = data.metric.needs_scores and data.classes is not None
        scored = (native.proba, compressed.proba) if wants_scores else (None, None)
        native_fn = scored[0] or native.predict
        compressed_fn = scored[1] or compressed.predict
        report = compression_report(
            native_fn, compressed_fn, X, y, data.metric, size_before, size_after,
            **_metric_kw(data.metric, data.classes),
        )  # fmt: skip
        report["rows"] = "task test part"
    report["max_abs_diff"] = _max_diff(_outputs(native), _outputs(compressed), X)
    return report


def _outputs(model: Native) -> Predict:
    return model.proba if model.proba is not None else model.predict


def _max_diff(before: Predict, after: Predict, X: pd.DataFrame) -> float:
    """The largest difference of the two models' probabilities (or values) on ``X``."""
    a = np.asarray(before(X), dtype=np.float64)
    b = np.asarray(after(X), dtype=np.float64)
    return float(np.max(np.abs(a.reshape(len(X), -1) - b.reshape(len(X), -1)), initial=0.0))


def _metric_kw(metric: Metric, classes: list[Any] | None) -> dict[str, Any]:
    """``labels`` and, for two classes, ``pos_label`` (the last), as the engine scores."""
    if classes is None:
        return {}
    accepted = inspect.signature(metric.fn).parameters
    out: dict[str, Any] = {}
    if "labels" in accepted:
        out["labels"] = list(classes)
    if "pos_label" in accepted and len(classes) == 2:
        out["pos_label"] = classes[-1]
    return out


def _ratio(before: float, after: float) -> float | None:
    return float(before / after) if after > 0 else None


def _summary(report: dict[str, Any]) -> str:
    size, latency = report["size_bytes"], report["latency_per_row_s"]
    line = (
        f"size {size['before']} -> {size['after']} bytes; latency per row "
        f"{latency['before'] * 1e6:.2f} -> {latency['after'] * 1e6:.2f} us"
    )
    metric = report.get("metric")
    if metric:
        line += f"; {metric['name']} {metric['before']:.4f} -> {metric['after']:.4f}"
    return line


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


register_kind(KIND, transform)
