"""Models served on ONNX Runtime, when that gives the model's own answers.

ONNX Runtime's ``TreeEnsemble`` walks the same trees faster than
``Booster.predict`` in one thread: on the serving harness's 300-tree model,
9 µs against 28 µs for one row and 9 µs against 15 µs per row in 1000-row
batches, because LightGBM converts every row to a sparse vector and pays
Python-side checks on each call. Serving replicas therefore run a LightGBM
version through ONNX Runtime when it is installed (the ``onnx`` extra).

Exact by construction (:mod:`.onnx_lightgbm` writes the booster's thresholds
and leaf values in double precision), and checked before use: the session must
reproduce ``Booster.predict`` on probe rows placed on, just below and just
above every split threshold, plus missing values and zeros. A booster the
converter refuses (categorical splits, zero-as-missing, linear trees, other
objectives) or that fails the check gets ``None``, and callers keep the booster.

A run's pipeline (preprocessing + model, :func:`pipeline_session`) goes the same
way when :func:`~.onnx_export.export_onnx` can write it and the result matches
the pipeline to 1e-9 on probe rows drawn around the fitted preprocessing's
statistics (with missing values): numeric columns in front of LightGBM or a
linear model, which compute in double. A replica then parses requests into a
float matrix instead of a DataFrame and skips scikit-learn's per-call checks;
models that compute in float32 (scikit-learn trees, the DNN), or have text,
date or category columns, stay on their own ``predict``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from openmaas.errors import OpenMaaSError
from openmaas.ml.compress._extras import require

__all__ = ["booster_session", "pipeline_session"]

log = logging.getLogger(__name__)

Predict = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]
Answers = tuple[npt.NDArray[Any], npt.NDArray[np.float64] | None]
PredictBoth = Callable[[npt.NDArray[np.float64]], Answers]
PROBE_ROWS = 512
TOLERANCE = 1e-9


def booster_session(booster: Any, *, seed: int = 0) -> Predict | None:
    """A function computing ``booster.predict(X)`` (a float64 ``[N, features]``
    matrix) on ONNX Runtime, or None where that would not be exact."""
    try:
        from openmaas.ml.compress.onnx_lightgbm import convert_booster

        ort = require("onnxruntime")
        part = convert_booster(booster)
    except OpenMaaSError as e:  # not installed, or no exact ONNX form: keep the booster
        log.info("serving LightGBM natively: %s", e)
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    session = ort.InferenceSession(
        part.model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    feed = session.get_inputs()[0].name
    fetch = [part.output]
    binary = part.task == "classification" and not _multiclass(booster)

    def predict(X: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        out = session.run(fetch, {feed: X})[0]
        if binary:  # Booster.predict gives P(class 1) only
            return np.ascontiguousarray(out[:, 1])
        return out.reshape(-1) if part.task == "regression" and out.shape[1] == 1 else out

    probe = _probe(booster, np.random.default_rng(seed))
    expected = np.asarray(booster.predict(probe, num_threads=1))
    got = predict(probe)
    if got.shape != expected.shape or not np.allclose(
        got, expected, rtol=TOLERANCE, atol=TOLERANCE, equal_nan=True
    ):
        log.warning("serving LightGBM natively: ONNX Runtime's answers differ on probe rows")
        return None
    return predict


def _multiclass(booster: Any) -> bool:
    return int(booster.num_model_per_iteration()) > 1


def _probe(booster: Any, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Rows whose values sit on each feature's split thresholds and either side of
    them, missing or zero now and then: where a different reading of a split shows."""
    n_features = int(booster.num_feature())
    thresholds: list[list[float]] = [[] for _ in range(n_features)]
    for tree in booster.dump_model()["tree_info"]:
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "split_index" in node:
                thresholds[node["split_feature"]].append(float(node["threshold"]))
                stack += [node["left_child"], node["right_child"]]
    X = np.empty((PROBE_ROWS, n_features))
    for j, values in enumerate(thresholds):
        t = np.unique(values) if values else np.array([1.0])
        candidates = np.concatenate(
            [t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf), [0.0, np.nan]]
        )
        X[:, j] = rng.choice(candidates, PROBE_ROWS)
    return X


def pipeline_session(pipeline: Any, names: Sequence[str], *, seed: int = 0) -> PredictBoth | None:
    """A function giving ``(pipeline.predict(X), pipeline.predict_proba(X) or None)``
    for a float64 matrix ``X`` whose columns are ``names``, on ONNX Runtime; or None
    where it cannot be written in ONNX or would not give the same answers."""
    from openmaas.ml.compress.onnx_export import export_onnx
    from openmaas.ml.compress.predictor import OnnxPredictor

    try:
        onnx = OnnxPredictor(export_onnx(pipeline))
    except OpenMaaSError as e:
        log.info("serving the pipeline natively: %s", e)
        return None
    names = [str(n) for n in names]
    if sorted(onnx.feature_names) != sorted(names):
        return None
    index = [names.index(n) for n in onnx.feature_names]
    reorder = index != list(range(len(names)))
    classes = onnx.classes

    def predict(X: npt.NDArray[np.float64]) -> Answers:
        if reorder:
            X = X[:, index]
        if classes is None:
            return onnx.predict(X), None
        proba = onnx.predict_proba(X)
        return classes[np.argmax(proba, axis=1)], proba

    import pandas as pd

    probe = _around(pipeline.steps[0][1], onnx.feature_names, np.random.default_rng(seed))
    frame = pd.DataFrame(probe, columns=onnx.feature_names)[names]
    got, got_proba = predict(np.ascontiguousarray(frame.to_numpy()))
    want = np.asarray(pipeline.predict(frame))
    same = got.shape == want.shape and (
        np.array_equal(got, want)
        if want.dtype.kind not in "fc"
        else np.allclose(got, want, rtol=TOLERANCE, atol=TOLERANCE, equal_nan=True)
    )
    if same and classes is not None:
        want_proba = np.asarray(pipeline.predict_proba(frame))
        same = got_proba is not None and np.allclose(
            got_proba, want_proba, rtol=TOLERANCE, atol=TOLERANCE
        )
    if not same:
        log.info("serving the pipeline natively: ONNX Runtime's answers differ on probe rows")
        return None
    return predict


def _around(prep: Any, names: Sequence[str], rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Probe rows near the data the preprocessing was fitted on: each column drawn
    around its fitted centre (imputer statistic or scaler mean) with its scale, a
    tenth missing; without a fitted scale, half the centre's size (at least 1)."""
    centre, spread = np.zeros(len(names)), np.full(len(names), np.nan)
    position = {n: i for i, n in enumerate(names)}
    transformers = getattr(getattr(prep, "transformer_", None), "transformers_", [])
    for _, transformer, cols in transformers:
        steps = getattr(transformer, "steps", [("", transformer)])
        at = [position[str(c)] for c in cols if str(c) in position]
        for _, step in steps:
            stats = getattr(step, "statistics_", None)
            if stats is not None and len(stats) == len(at):
                centre[at] = np.nan_to_num(np.asarray(stats, dtype=np.float64))
            mean, scale = getattr(step, "mean_", None), getattr(step, "scale_", None)
            if mean is not None and len(mean) == len(at):
                centre[at] = mean
            if scale is not None and len(scale) == len(at):
                spread[at] = np.where(np.asarray(scale) > 0, scale, 1.0)
    spread = np.where(np.isnan(spread), np.maximum(1.0, np.abs(centre) / 2), spread)
    X = centre + spread * rng.standard_normal((PROBE_ROWS, len(names)))
    X[rng.random(X.shape) < 0.1] = np.nan
    return X
