"""The prediction distribution over windows: histogram, moments, class shares, drift."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from openmaas.errors import InvalidInput
from openmaas.ml.data.profile import Profiler
from openmaas.ml.monitoring import FeatureReference, PredictionWindow, Reference
from tests.ml.monitoring._traffic import profile_of, traffic


def test_regression_predictions_merge_and_summarise() -> None:
    rng = np.random.default_rng(12)
    ref = FeatureReference.from_values("prediction", rng.normal(5, 2, 5000))
    values = rng.normal(5, 2, 3000)
    replicas = [PredictionWindow(ref) for _ in range(3)]
    for i, part in enumerate(np.array_split(values, 9)):
        replicas[i % 3].add(part)
    merged = PredictionWindow.from_dict(ref, json.loads(json.dumps(replicas[0].to_dict())))
    for other in replicas[1:]:
        merged.merge(other)
    s = merged.summary()
    assert s["rows"] == 3000
    assert sum(s["counts"]) == 3000
    assert len(s["counts"]) == len(s["edges"]) + 1 == 20
    assert s["mean"] == pytest.approx(values.mean())
    assert s["std"] == pytest.approx(values.std(ddof=1))
    assert (s["min"], s["max"]) == (values.min(), values.max())
    assert not merged.drift().flagged


def test_shifted_predictions_drift_against_the_target_profile() -> None:
    rng = np.random.default_rng(13)
    train = traffic(rng, 20_000)
    ref = Reference.from_profile(profile_of(train), ["f8"]).features[0]
    window = PredictionWindow(ref)
    window.add(rng.normal(100, 15, 1000))
    assert not window.drift().flagged
    window = PredictionWindow(ref)
    window.add(rng.normal(108, 15, 1000))
    assert window.drift().flagged


def test_class_predictions_count_classes_and_mean_probabilities() -> None:
    ref = FeatureReference.from_counts("label", {"no": 700, "yes": 300})
    window = PredictionWindow(ref)
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    window.add(np.array(["no", "yes", "no", "no"]), proba)
    s = window.summary()
    assert s["classes"] == ["no", "yes", "other"]
    assert s["counts"] == [3, 1, 0]
    assert s["mean_proba"] == pytest.approx({"no": 0.6, "yes": 0.4})
    drifted = PredictionWindow(ref)
    drifted.add(np.array(["yes"] * 400 + ["no"] * 100))
    assert drifted.drift().flagged
    with pytest.raises(InvalidInput, match="predictions must be one value per row"):
        window.add(proba)


def test_profile_reference_of_a_categorical_target() -> None:
    labels = np.random.default_rng(14).choice(["a", "b", "c"], 3000, p=[0.5, 0.3, 0.2])
    table = pa.table({"x": np.arange(3000.0), "label": labels})
    profiler = Profiler(table.schema, sample_rows=1000, seed=1)
    profiler.add(table)
    profile = profiler.result(profiler.kinds(), target="label")
    assert Reference.from_profile(profile).names == ("x",)  # the target is not a feature
    ref = Reference.from_profile(profile, ["label"]).features[0]
    assert (ref.kind, ref.categories, ref.source) == ("categorical", ("a", "b", "c"), "top")
    assert ref.proportions == pytest.approx([np.mean(labels == c) for c in "abc"] + [0.0])
