"""Zero between-class spread leaves NC1 and the metrics of the centred means undefined (null with a
note), never a "perfect collapse" of 0 (issue 10, section 6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nc_audit.core.class_stats import ClassStats
from nc_audit.io.checkpoints.load import Head
from nc_audit.measurement.compute import metrics_from_arrays
from nc_audit.measurement.describe import build_notes
from nc_audit.metrics.collapse import MEANS_DEPENDENT, means_coincide, nc1_batched, nc1_from_projections


@pytest.mark.parametrize("value", [0.0, 3.25, 1e-7])
def test_constant_features_leave_every_means_metric_undefined_with_a_note(value: float) -> None:
    labels = torch.arange(60) % 3
    features = torch.full((60, 4), value, dtype=torch.float32)
    head = Head("fc", torch.randn(3, 4, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    metrics, _ = metrics_from_arrays(features, labels, head)
    for key in MEANS_DEPENDENT:
        assert metrics[key] is None, key
    assert metrics["nc2_equinorm_head"] is not None and metrics["h_head"] >= 0
    stats = ClassStats.from_batch(features, labels, 3)
    notes = " ".join(build_notes(stats, 3, 4, head, metrics))
    assert "class means coincide" in notes and all(key in notes for key in MEANS_DEPENDENT)


def test_nc1_is_nan_not_zero_when_the_between_class_covariance_vanishes() -> None:
    M = torch.zeros(1, 3, 4, dtype=torch.float64)
    assert math.isnan(float(nc1_batched(M, torch.eye(4, dtype=torch.float64)[None])[0]))
    assert math.isnan(nc1_from_projections(torch.zeros(2), torch.full((2,), math.inf), 10, 3))


def test_distinct_means_are_not_taken_for_coinciding_ones() -> None:
    rng = np.random.default_rng(0)
    labels = np.arange(90) % 3
    features = rng.normal(size=(3, 5))[labels] * 1e-3 + 1e3  # small spread on a large offset
    stats = ClassStats.from_batch(torch.from_numpy(features), torch.from_numpy(labels), 3)
    assert not means_coincide(stats)
    Sigma_W = torch.zeros(1, 5, 5, dtype=torch.float64)
    M = (stats.class_means - stats.global_mean)[None]
    assert float(nc1_batched(M, Sigma_W - 1e-30 * torch.eye(5)[None])[0]) == 0.0  # clamped at 0, never < 0
