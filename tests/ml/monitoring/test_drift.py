"""Drift acceptance: quiet on in-distribution traffic, one shifted feature flags alone."""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from openmaas.errors import InvalidInput
from openmaas.ml.data.profile import Profiler
from openmaas.ml.monitoring import DriftRule, FeatureWindow, Reference, detect_drift
from tests.ml.monitoring._traffic import FEATURES, PROFILE_SEED, profile_of, traffic

WINDOW = 1000


@functools.cache
def _reference(source: str, seed: int) -> tuple[Reference, np.ndarray]:
    """The reference of a 20,000-row training set, and the training features' sigma."""
    train = traffic(np.random.default_rng(seed), 20_000)
    if source == "matrix":
        return Reference.from_matrix(train, FEATURES), train.std(axis=0)
    sample_rows = 10_000 if source == "profile sample" else 100  # 100: histogram fallback
    # through JSON, as the profile is stored
    profile = json.loads(json.dumps(profile_of(train, sample_rows=sample_rows)))
    return Reference.from_profile(profile), train.std(axis=0)


@pytest.mark.parametrize("source", ["matrix", "profile sample", "profile histogram"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_flag_over_20_in_distribution_windows(source: str, seed: int) -> None:
    ref, _ = _reference(source, seed)
    rng = np.random.default_rng(seed + 100)
    for _ in range(20):
        window = FeatureWindow(ref)
        window.add(traffic(rng, WINDOW))
        report = detect_drift(window)
        assert report.flagged_features == []
        assert not report.flagged
        assert max(f.psi for f in report.features) < 0.08  # threshold 0.1; 300 seeds: max 0.05


@pytest.mark.parametrize("source", ["matrix", "profile sample", "profile histogram"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_half_sigma_shift_flags_that_feature_and_no_other(source: str, seed: int) -> None:
    ref, sigma = _reference(source, seed)
    rng = np.random.default_rng(seed + 200)
    for j, name in enumerate(FEATURES):
        x = traffic(rng, WINDOW)
        x[:, j] += 0.5 * sigma[j]
        window = FeatureWindow(ref)
        window.add(x)
        report = detect_drift(window)
        assert report.flagged_features == [name]
        assert report.flagged


def test_reference_from_profile_uses_sample_then_histogram() -> None:
    train = traffic(np.random.default_rng(3), 5000)
    by_sample = Reference.from_profile(profile_of(train))
    by_hist = Reference.from_profile(profile_of(train, sample_rows=100))
    assert {f.source for f in by_sample.features} == {"sample"}
    assert {f.source for f in by_hist.features} == {"histogram"}
    assert all(f.n_bins == 20 for f in by_sample.features if f.name not in ("f2", "f6"))
    assert by_sample.features[6].n_bins == 3  # binary: (-inf, 0], (0, 1], (1, inf)


def test_batches_and_replicas_merge_to_the_same_counts() -> None:
    rng = np.random.default_rng(4)
    ref = Reference.from_matrix(traffic(rng, 5000), FEATURES)
    x = traffic(rng, 900)
    whole = FeatureWindow(ref)
    whole.add(x)
    replicas = [FeatureWindow(ref) for _ in range(3)]
    for i, part in enumerate(np.array_split(x, 30)):
        replicas[i % 3].add(part)
    merged = FeatureWindow.from_dict(ref, json.loads(json.dumps(replicas[0].to_dict())))
    for other in replicas[1:]:
        merged.merge(FeatureWindow.from_dict(ref, other.to_dict()))
    assert merged.rows == whole.rows == 900
    assert merged.to_dict() == whole.to_dict()
    assert detect_drift(merged) == detect_drift(whole)


def test_missing_values_are_counted_and_a_missing_surge_flags() -> None:
    rng = np.random.default_rng(5)
    ref = Reference.from_matrix(traffic(rng, 10_000), FEATURES)
    x = traffic(rng, WINDOW)
    x[: WINDOW // 5, 3] = np.nan
    window = FeatureWindow(ref)
    window.add(x)
    report = detect_drift(window)
    f3 = report.features[3]
    assert (f3.rows, f3.missing) == (WINDOW - WINDOW // 5, WINDOW // 5)
    assert report.flagged_features == ["f3"]


def test_columns_batch_with_categorical_feature() -> None:
    rng = np.random.default_rng(6)
    cities = np.array(["Oslo", "Lima", "Pune", "Kyiv"])
    train = {"age": rng.normal(40, 10, 8000), "city": cities[rng.integers(0, 4, 8000)]}
    ref = Reference.from_columns(train)
    assert [f.kind for f in ref.features] == ["numeric", "categorical"]
    quiet = FeatureWindow(ref)
    quiet.add({"age": rng.normal(40, 10, 500), "city": list(cities[rng.integers(0, 4, 500)])})
    quiet.add({"age": [41.0, None], "city": ["Oslo", None]})
    assert detect_drift(quiet).flagged_features == []
    assert quiet.feature_counts(1)[1] == 1  # the None city
    shifted = FeatureWindow(ref)
    city = np.where(rng.random(500) < 0.4, "Quito", cities[rng.integers(0, 4, 500)])
    shifted.add({"age": rng.normal(40, 10, 500), "city": city})
    report = detect_drift(shifted)
    assert report.flagged_features == ["city"]
    assert report.features[1].ks is None


def test_frames_are_read_by_column_name() -> None:
    rng = np.random.default_rng(15)
    ref = Reference.from_matrix(traffic(rng, 5000), FEATURES)
    x = traffic(rng, 300)
    by_matrix = FeatureWindow(ref)
    by_matrix.add(x)
    frame = pd.DataFrame(x, columns=FEATURES)[FEATURES[::-1]]  # another column order
    for batch in (frame, pa.Table.from_pandas(frame)):
        window = FeatureWindow(ref)
        window.add(batch)
        assert window.to_dict() == by_matrix.to_dict()


def test_boolean_profile_column_takes_booleans_or_numbers() -> None:
    rng = np.random.default_rng(16)
    table = pa.table({"flag": rng.random(5000) < 0.3, "x": rng.normal(0, 1, 5000)})
    profiler = Profiler(table.schema, sample_rows=1000, seed=PROFILE_SEED)
    profiler.add(table)
    ref = Reference.from_profile(profiler.result(profiler.kinds()))
    assert ref.features[0].proportions == pytest.approx([0.7, 0.3, 0.0], abs=0.02)
    flags = rng.random(1000) < 0.3
    as_bool, as_float = FeatureWindow(ref), FeatureWindow(ref)
    as_bool.add({"flag": flags, "x": rng.normal(0, 1, 1000)})
    as_float.add({"flag": flags.astype(float), "x": rng.normal(0, 1, 1000)})
    assert as_bool.feature_counts(0)[0].tolist() == as_float.feature_counts(0)[0].tolist()
    assert detect_drift(as_bool).flagged_features == []
    flipped = FeatureWindow(ref)
    flipped.add({"flag": rng.random(1000) < 0.5, "x": rng.normal(0, 1, 1000)})
    assert detect_drift(flipped).flagged_features == ["flag"]


def test_small_windows_are_not_judged() -> None:
    rng = np.random.default_rng(7)
    ref = Reference.from_matrix(traffic(rng, 5000), FEATURES)
    x = traffic(rng, 50)
    x[:, 0] += 3.0
    window = FeatureWindow(ref)
    window.add(x)
    report = detect_drift(window)
    assert not report.features[0].enough_data
    assert not report.flagged
    assert detect_drift(window, DriftRule(min_rows=20)).flagged_features == ["f0"]


def test_reference_round_trips_through_json_with_the_same_fingerprint() -> None:
    ref = Reference.from_profile(profile_of(traffic(np.random.default_rng(8), 3000)))
    again = Reference.from_dict(json.loads(json.dumps(ref.to_dict())))
    assert again.fingerprint == ref.fingerprint
    other = Reference.from_matrix(traffic(np.random.default_rng(9), 3000), FEATURES)
    with pytest.raises(InvalidInput, match="different references"):
        FeatureWindow(ref).merge(FeatureWindow(other))


def test_bad_batches_and_profiles_raise_invalid_input() -> None:
    ref = Reference.from_matrix(traffic(np.random.default_rng(10), 3000), FEATURES)
    window = FeatureWindow(ref)
    with pytest.raises(InvalidInput, match=r"batch has shape \(4, 3\), expected \(rows, 10\)"):
        window.add(np.zeros((4, 3)))
    with pytest.raises(InvalidInput, match="feature 'f1' has values that are not numbers"):
        window.add({"f1": ["a", "b"]})
    with pytest.raises(InvalidInput, match="batch columns have different lengths"):
        window.add({"f1": [1.0, 2.0], "f2": [1.0]})
    with pytest.raises(InvalidInput, match="feature 'nope' is not a column of the dataset profile"):
        Reference.from_profile(profile_of(traffic(np.random.default_rng(0), 500)), ["nope"])
