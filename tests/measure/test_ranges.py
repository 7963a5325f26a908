"""Every metric within its mathematical range or null with a note (issue 19, section 5): zero head rows and
zero centred means leave the cosine Grams, closed forms for what is left, the range check at the report
boundary, and d = 0 refused."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nc_audit.core.errors import InputError
from nc_audit.measurement.api import measure_arrays
from nc_audit.measurement.monitor import Monitor
from nc_audit.metrics.information import mir_at_collapse
from nc_audit.report.model import Report
from nc_audit.report.ranges import OUT_OF_RANGE, check_ranges

INFO = ("h_head", "h_means", "mi", "mir", "hdr")


def simplex(C: int) -> np.ndarray:
    """C unit rows of a simplex ETF in R^C: centred basis vectors, normalised; they sum to 0. (C, C)"""
    M = np.eye(C) - 1.0 / C
    return M / np.linalg.norm(M, axis=1, keepdims=True)


def collapsed(means: np.ndarray, per_class: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Features whose class means are exactly ``means`` (±e noise in a pair of opposite rows)."""
    C, d = means.shape
    labels = np.repeat(np.arange(C), per_class)
    noise = np.zeros((C * per_class, d))
    noise[0::2, 0], noise[1::2, 0] = 1e-3, -1e-3
    return means[labels] + noise, labels


def entropy(K: np.ndarray) -> float:
    """Matrix entropy of a unit-diagonal Gram in float64: eigenvalues of K/n."""
    lam = np.clip(np.linalg.eigvalsh(K) / K.shape[0], 0.0, None)
    lam = lam[lam > 0]
    return float(-(lam * np.log(lam)).sum())


def no_range_note(report: Report) -> None:
    assert not [note for note in report.notes if OUT_OF_RANGE in note], report.notes


@pytest.mark.parametrize("C", [4, 6, 10])
def test_a_zero_head_row_leaves_its_class_out_and_matches_the_float64_reference(C: int) -> None:
    M = simplex(C)
    W = M.copy()
    W[1] = 0.0  # a pruned class
    features, labels = collapsed(M)
    report = measure_arrays(features, labels, W, sample_level=True)
    no_range_note(report)
    # the kept C − 1 rows of the C-simplex: Gram 1 on the diagonal, −1/(C−1) off it (closed form below)
    kept = np.delete(M, 1, axis=0)
    K = kept @ kept.T
    h = entropy(K)
    n = C - 1
    closed = -(1 / n**2) * math.log(1 / n**2) - (n - 1) * (C / n**2) * math.log(C / n**2)
    assert h == pytest.approx(closed, rel=1e-12)
    h_joint = entropy(K * K)
    metrics = report.metrics
    assert metrics["h_head"] == pytest.approx(h, rel=1e-9) and metrics["h_means"] == pytest.approx(
        h, rel=1e-9
    )
    assert metrics["mi"] == pytest.approx(2 * h - h_joint, rel=1e-9)
    assert metrics["mir"] == pytest.approx((2 * h - h_joint) / h, rel=1e-9) and metrics["mir"] <= 1.0
    assert metrics["hdr"] == pytest.approx(0.0, abs=1e-9)
    assert report.targets["mir"] == pytest.approx(mir_at_collapse(C - 1))  # the kept count
    assert metrics["nc2_equiangular_head"] == pytest.approx(0.0, abs=1e-12)  # C−1 equal cosines
    assert "class 1 has a zero-norm head row" in " ".join(report.notes)
    for key in ("h_labels", "mi_samples", "mir_samples", "hdr_samples"):
        assert metrics[key] is None  # K_Y has zero rows: undefined, with its note
    assert any("h_labels, mi_samples" in note and "class 1" in note for note in report.notes)


@pytest.mark.parametrize("C", [4, 5, 8])
def test_a_class_mean_at_the_global_mean_leaves_an_exact_etf_of_the_others(C: int) -> None:
    """Classes 0..C−2 form a (C−1)-simplex ETF; class C−1 sits at the global mean (its centred mean is 0):
    it is excluded, and the kept classes give the values at collapse for C − 1 classes."""
    etf = simplex(C - 1)  # (C−1, C−1), sums to 0
    means = np.vstack([etf, np.zeros((1, C - 1))])  # (C, C−1): the last mean is the global mean
    W = means.copy()
    W[-1] = np.ones(C - 1)  # a head row of its own (any direction)
    features, labels = collapsed(means)
    report = measure_arrays(features, labels, W)
    no_range_note(report)
    metrics = report.metrics
    assert metrics["h_head"] == pytest.approx(math.log(C - 2), rel=1e-9)
    assert metrics["h_means"] == pytest.approx(math.log(C - 2), rel=1e-9)
    assert metrics["mir"] == pytest.approx(mir_at_collapse(C - 1), rel=1e-9)
    assert report.targets["mir"] == pytest.approx(mir_at_collapse(C - 1), rel=1e-12)
    assert metrics["nc2_equiangular_means"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["nc2_maxangle_means"] == pytest.approx(0.0, abs=1e-9)
    assert f"class {C - 1} has a class mean equal to the global mean" in " ".join(report.notes)


def test_an_all_zero_head_leaves_the_information_metrics_null_at_both_levels() -> None:
    M = simplex(5)
    features, labels = collapsed(M)
    report = measure_arrays(features, labels, np.zeros_like(M), sample_level=True)
    no_range_note(report)
    for key in (*INFO, "nc2_equiangular_head", "nc2_maxangle_head", "h_labels", "mi_samples", "mir_samples"):
        assert report.metrics[key] is None, key
    data = report.to_dict()
    notes = " ".join(data["notes"])
    assert "classes 0, 1, 2, 3, 4 have a zero-norm head row" in notes and "coincide" not in notes
    assert data["metrics"]["h_samples"] is not None and data["metrics"]["nc1"] is not None


def test_the_monitor_excludes_the_same_classes(tmp_path: Path) -> None:
    M = simplex(4)
    features, labels = collapsed(M)
    W = M.copy()
    W[2] = 0.0
    record = Monitor(tmp_path / "m.jsonl", num_classes=4).measure(
        0, torch.tensor(features), torch.tensor(labels), torch.tensor(W)
    )
    assert record["metrics"]["mir"] is not None and 0.0 <= record["metrics"]["mir"] <= 1.0
    assert "class 2 has a zero-norm head row" in " ".join(record["notes"])
    assert record["targets"]["h_head"] == pytest.approx(math.log(2))  # nc_targets(C − 1 = 3)


def test_zero_feature_width_is_refused() -> None:
    with pytest.raises(InputError, match="width d = 0"):
        measure_arrays(np.zeros((10, 0)), np.arange(10) % 2, np.zeros((2, 0)))


@pytest.mark.parametrize(
    ("key", "value", "others"),
    [
        ("mir", 2.35, {}),
        ("mir", -0.5, {}),
        ("hdr", 1.5, {}),
        ("nc4", 1.2, {}),
        ("accuracy", 7.0, {}),
        ("nc1", -5.0, {}),
        ("h_head", math.log(10) + 0.1, {}),
        ("mi", 1.039, {"h_head": 0.0, "h_means": 1.2}),
        ("mir", math.inf, {}),
        ("nc3", 4.5, {}),
    ],
)
def test_an_out_of_range_value_becomes_null_with_a_note(key: str, value: float, others: dict) -> None:
    checked, notes = check_ranges({**others, key: value}, num_classes=10)
    assert checked[key] is None and len(notes) == 1
    assert key in notes[0] and OUT_OF_RANGE in notes[0]


def test_rounding_at_a_bound_is_clamped_not_nulled() -> None:
    checked, notes = check_ranges({"mir": 1.0 + 1e-12, "mi": 0.7 + 1e-13, "h_head": 0.7, "h_means": 0.9}, 10)
    assert notes == [] and checked["mir"] == 1.0 and checked["mi"] == 0.7
    checked, notes = check_ranges({"nc1": math.nan, "nc1_cdnv": math.inf}, 10)  # undefined, noted elsewhere
    assert notes == [] and math.isnan(checked["nc1"])


def test_every_report_goes_through_the_range_check() -> None:
    report = Report(checkpoint={}, features={"num_classes": 3}, conventions={}, metrics={"mir": 2.35},
                    targets={})  # fmt: skip
    assert report.metrics["mir"] is None and report.to_dict()["metrics"]["mir"] is None
    assert any("mir = 2.35" in note for note in report.notes)
