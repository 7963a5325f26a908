"""Property (issue 19, deliverable 8): for random small features, labels and heads, degenerate ones included
(zero head rows, duplicate class means, a class mean at the global mean, constant features, huge and tiny
scales), every reported metric lies in its mathematical range or is null with a note naming it, and no
report ever carries an out-of-range note (report/ranges.py: that note is a bug)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nc_audit.measurement.api import measure_arrays
from nc_audit.report.ranges import OUT_OF_RANGE, metric_range

DEGENERACIES = ("none", "zero_head_rows", "all_zero_head", "duplicate_means", "mean_at_global", "constant")


@st.composite
def problems(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    C = draw(st.integers(2, 5))
    d = draw(st.integers(1, 6))
    per_class = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([1e-150, 1e-6, 1.0, 1e6, 1e150]))
    kind = draw(st.sampled_from(DEGENERACIES))
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(C), per_class)
    means = rng.normal(size=(C, d)) * 3
    features = means[labels] + rng.normal(size=(labels.size, d))
    W = rng.normal(size=(C, d))
    if kind == "zero_head_rows":
        W[rng.random(C) < 0.5] = 0.0
    elif kind == "all_zero_head":
        W[:] = 0.0
    elif kind == "duplicate_means":
        features[labels == 1] = features[labels == 0]
    elif kind == "mean_at_global":
        others = features[labels != 0].mean(0)
        features[labels == 0] += others - features[labels == 0].mean(0)
    elif kind == "constant":
        features[:] = 1.0
    bias = rng.normal(size=C) if draw(st.booleans()) else None
    return features * scale, labels, W, None if bias is None else bias * scale


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_every_reported_metric_is_in_range_or_null_with_a_note(
    problem: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None],
) -> None:
    features, labels, W, bias = problem
    report = measure_arrays(features, labels, W, bias, sample_level=True)
    data = report.to_dict()
    notes = " ".join(data["notes"]).lower()
    assert OUT_OF_RANGE not in notes, data["notes"]
    C, N = data["features"]["num_classes"], data["features"]["num_samples"]
    for key, value in data["metrics"].items():
        if value is None:
            assert key in notes or key.split("_")[0] in notes, (key, data["notes"])
            continue
        assert isinstance(value, float) and math.isfinite(value), (key, value)
        low, high = metric_range(key, data["metrics"], C, N) or (-math.inf, math.inf)
        assert low <= value <= high, (key, value, low, high)
    for key in ("accuracy", "ncc_accuracy"):
        assert 0.0 <= data["details"][key] <= 1.0
