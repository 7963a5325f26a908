"""Closed forms of docs/METRICS.md: an exact simplex ETF is at Neural Collapse, and MIR_NC(C) is its MIR.

At NC, K_W = K_M = G (the simplex-ETF Gram), so NC1 = NC3 = NC4 = HDR = 0 and MIR = MIR_NC(C).
C = 2 is degenerate (H(K_M) = 0, MIR undefined) and C > d + 1 admits no simplex ETF in R^d.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import DumpWriter, make_etf_problem, make_random_problem
from reference import NC_KEYS, matrix_entropy, mir_nc, simplex_etf_gram

from nc_audit.measurement.api import measure
from nc_audit.metrics.information import mir_at_collapse, nc_targets

EXACT = 1e-9

# docs/METRICS.md, "Values at Neural Collapse": examples to 6 decimals.
DOCUMENTED_MIR_NC = {3: 0.5, 4: 0.753953, 10: 0.952351, 100: 0.997813, 1000: 0.999855}


@pytest.mark.parametrize(
    ("num_classes", "feature_dim"),
    [(3, 12), (4, 3), (4, 8), (10, 9), (10, 16)],
    ids=["C3-d12", "C4-d3(C=d+1)", "C4-d8", "C10-d9(C=d+1)", "C10-d16"],
)
def test_exact_simplex_etf_is_at_neural_collapse(
    write_dump: DumpWriter, num_classes: int, feature_dim: int
) -> None:
    etf = make_etf_problem(num_classes, feature_dim)
    report = measure(write_dump(etf), device="cpu")
    metrics = report.metrics

    for key in (*NC_KEYS, "hdr"):  # NC1 = NC3 = NC4 = HDR = 0, and every NC2 variant too
        assert abs(metrics[key]) <= EXACT, (key, metrics[key])
    assert metrics["mir"] == pytest.approx(mir_nc(num_classes), abs=EXACT)
    assert metrics["h_head"] == pytest.approx(math.log(num_classes - 1), abs=EXACT)
    assert metrics["h_means"] == pytest.approx(math.log(num_classes - 1), abs=EXACT)
    # every metric sits on its reported NC target
    for key, value in metrics.items():
        assert value == pytest.approx(report.targets[key], abs=EXACT), key
    assert report.details["accuracy"] == 1.0
    assert not any("simplex ETF" in note for note in report.notes)


@pytest.mark.parametrize("C", range(3, 51))
def test_mir_at_collapse_matches_the_numeric_spectrum_of_the_etf_gram(C: int) -> None:
    G = simplex_etf_gram(C)
    h = matrix_entropy(G)
    h_joint = matrix_entropy(G * G)
    mi = 2 * h - h_joint

    assert h == pytest.approx(math.log(C - 1), abs=1e-10)
    closed_joint = (2 * C - 3) / (C - 1) * math.log(C - 1) - (C - 2) / (C - 1) * math.log(C - 2)
    assert h_joint == pytest.approx(closed_joint, abs=1e-10)
    assert mir_at_collapse(C) == pytest.approx(mi / h, abs=1e-10)
    targets = nc_targets(C)
    assert targets["mir"] == pytest.approx(mi / h, abs=1e-10)
    assert targets["mi"] == pytest.approx(mi, abs=1e-10)
    assert targets["h_head"] == targets["h_means"] == pytest.approx(h, abs=1e-10)
    assert targets["hdr"] == 0.0


@pytest.mark.parametrize(("C", "documented"), sorted(DOCUMENTED_MIR_NC.items()))
def test_mir_at_collapse_reproduces_the_documented_examples(C: int, documented: float) -> None:
    assert mir_at_collapse(C) == pytest.approx(documented, abs=1e-6)
    assert nc_targets(C)["mir"] == pytest.approx(documented, abs=1e-6)


def test_nc_targets_of_the_collapse_metrics_are_zero() -> None:
    targets = nc_targets(10)
    for key in (*NC_KEYS, "hdr"):
        assert targets[key] == 0.0, key


def test_two_classes_report_mir_as_null_with_the_reason(write_dump: DumpWriter) -> None:
    """C = 2: the centred means are opposite, H(K_M) = 0, so MIR = MI/0 is null, never a number."""
    etf = make_etf_problem(2, 5)
    report = measure(write_dump(etf), device="cpu")

    assert report.metrics["h_means"] == pytest.approx(0.0, abs=1e-12)
    assert report.metrics["mir"] is None
    assert report.metrics["hdr"] is None  # the self-dual head has H(K_W) = 0 too
    assert report.targets["mir"] is None
    assert report.to_dict()["metrics"]["mir"] is None
    assert any("C = 2" in note and "MIR" in note for note in report.notes)
    assert report.metrics["nc1"] == pytest.approx(0.0, abs=EXACT)


def test_two_classes_with_a_generic_head_still_report_mir_as_null(write_dump: DumpWriter) -> None:
    """With H(K_W) > 0, HDR is defined (= 1) but MIR stays undefined."""
    problem = make_random_problem(num_classes=2, feature_dim=6)
    report = measure(write_dump(problem), device="cpu")

    assert report.metrics["h_head"] > 0.1
    assert report.metrics["mir"] is None
    assert report.metrics["hdr"] == pytest.approx(1.0, abs=1e-9)
    assert any("C = 2" in note for note in report.notes)


def test_more_classes_than_d_plus_one_get_a_note_that_no_simplex_etf_fits(write_dump: DumpWriter) -> None:
    problem = make_random_problem(num_classes=6, feature_dim=3)
    report = measure(write_dump(problem), device="cpu")

    notes = [note for note in report.notes if "simplex ETF" in note]
    assert len(notes) == 1
    assert "C = 6" in notes[0] and "d + 1 = 4" in notes[0]


def test_c_equal_to_d_plus_one_gets_no_such_note(write_dump: DumpWriter) -> None:
    problem = make_random_problem(num_classes=4, feature_dim=3)
    report = measure(write_dump(problem), device="cpu")
    assert not any("simplex ETF" in note for note in report.notes)
    assert np.isfinite(report.metrics["mir"])
