"""`measure` computes every class-level key of docs/METRICS.md: it agrees with a plain float64 NumPy reference.

The data are unbalanced (so the sample-weighted global mean matters), not centred (so centring
matters) and the head has a bias (so NC4 must include it). Stored float16/float32 features are compared
with the reference on the same values upcast to float64.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import DumpWriter, make_random_problem
from reference import ALL_KEYS, Problem, reference_metrics, relative_difference

from nc_audit.measurement.api import measure

RTOL = 1e-8
#: Values that are 0 in exact arithmetic (e.g. H(K_M) for C = 2) are round-off on both sides.
ATOL = 1e-12


def differences(metrics: dict[str, float | None], expected: dict[str, float | None]) -> dict[str, float]:
    """Per key: |measured − reference| / |reference|, or the absolute difference where the reference is
    0 up to round-off (|reference| <= ATOL); 0 when both are null, inf when only one is."""
    result = {}
    for key in ALL_KEYS:
        value, reference = metrics[key], expected[key]
        if value is not None and reference is not None and abs(reference) <= ATOL:
            result[key] = abs(value - reference)
        else:
            result[key] = relative_difference(value, reference)
    return result


def assert_matches_reference(
    metrics: dict[str, float | None], expected: dict[str, float | None], label: str
) -> None:
    found = differences(metrics, expected)
    relative = {
        key: value for key, value in found.items() if expected[key] is None or abs(expected[key]) > ATOL
    }
    worst = max(relative, key=relative.__getitem__)
    print(f"\n[{label}] max relative difference vs reference: {relative[worst]:.2e} ({worst})")
    print("  " + ", ".join(f"{key}={value:.1e}" for key, value in found.items()))
    bad = {
        key: (metrics[key], expected[key])
        for key, value in found.items()
        if not value <= (RTOL if key in relative else ATOL)
    }
    assert not bad, f"measured vs reference differ by more than {RTOL:g} (relative) / {ATOL:g} (at 0): {bad}"


def test_report_holds_every_metric_key(random_dump: Path) -> None:
    report = measure(random_dump, device="cpu")
    assert list(report.metrics) == list(ALL_KEYS)
    assert set(report.targets) >= set(ALL_KEYS)


@pytest.mark.parametrize("label_dtype", [np.int64, np.int32, np.uint8])
@pytest.mark.parametrize("feature_dtype", [np.float64, np.float32, np.float16])
def test_measure_agrees_with_the_reference_on_every_key(
    write_dump: DumpWriter, random_problem: Problem, feature_dtype: type, label_dtype: type
) -> None:
    dump = write_dump(random_problem, feature_dtype=feature_dtype, label_dtype=label_dtype)
    stored = random_problem.features.astype(feature_dtype).astype(np.float64)  # what the file holds
    expected = reference_metrics(stored, random_problem.labels, random_problem.W, random_problem.b)

    report = measure(dump, device="cpu")

    assert report.features["num_samples"] == random_problem.num_samples
    assert report.features["dtype"] == np.dtype(feature_dtype).name
    assert_matches_reference(
        report.metrics, expected, f"{np.dtype(feature_dtype).name}/{np.dtype(label_dtype).name}"
    )


@pytest.mark.parametrize(
    ("num_classes", "feature_dim"),
    [(2, 6), (4, 3), (6, 3), (12, 40)],
    ids=["C2-mir-undefined", "C=d+1", "C>d+1-rank-deficient-Sigma_B", "C12-d40"],
)
def test_other_shapes_agree_with_the_reference(
    write_dump: DumpWriter, num_classes: int, feature_dim: int
) -> None:
    """C = 2 (MIR null in both), C > d + 1 (Σ_B has rank d < C − 1), more classes than the default."""
    problem = make_random_problem(seed=num_classes, num_classes=num_classes, feature_dim=feature_dim)
    expected = reference_metrics(problem.features, problem.labels, problem.W, problem.b)

    report = measure(write_dump(problem), device="cpu")

    assert_matches_reference(report.metrics, expected, f"C={num_classes}, d={feature_dim}")


def test_checkpoint_plus_features_agrees_with_the_reference(
    random_checkpoint: Path, write_dump: DumpWriter, random_problem: Problem
) -> None:
    dump = write_dump(random_problem, head=False, feature_dtype=np.float32)
    stored = random_problem.features.astype(np.float32).astype(np.float64)
    expected = reference_metrics(stored, random_problem.labels, random_problem.W, random_problem.b)

    report = measure(random_checkpoint, features=dump, device="cpu")

    assert report.checkpoint["head"] == "fc"
    assert report.conventions["nc4_bias"] is True
    assert_matches_reference(report.metrics, expected, "checkpoint .pt + float32 dump")


def test_nc4_includes_the_bias(write_dump: DumpWriter, random_problem: Problem) -> None:
    """A head without bias is measured with argmax W h, and the report says so."""
    unbiased = Problem(random_problem.features, random_problem.labels, random_problem.W, None)
    expected = reference_metrics(unbiased.features, unbiased.labels, unbiased.W, None)
    with_bias = reference_metrics(unbiased.features, unbiased.labels, unbiased.W, random_problem.b)
    assert expected["nc4"] != with_bias["nc4"], "the bias should change NC4 on this data"

    report = measure(write_dump(unbiased), device="cpu")

    assert report.metrics["nc4"] == expected["nc4"]
    assert report.conventions["nc4_bias"] is False
    assert any("no bias" in note for note in report.notes)


def test_held_out_split_takes_class_means_from_train(write_dump: DumpWriter, random_problem: Problem) -> None:
    """--split test: NC1–NC3 and the information metrics describe train; NC4 counts test decisions
    against the train class means."""
    rng = np.random.default_rng(5)
    test_features = random_problem.features[:300] + 0.8 * rng.normal(size=(300, random_problem.feature_dim))
    test_labels = random_problem.labels[:300]
    dump = write_dump(random_problem, split="train")
    write_dump(random_problem, split="test", features=test_features, labels=test_labels, mode="a")
    expected = reference_metrics(
        random_problem.features, random_problem.labels, random_problem.W, random_problem.b, test_features
    )

    report = measure(dump, split="test", device="cpu")

    assert report.features["split"] == "test"
    assert report.features["means_split"] == "train"
    assert report.features["num_samples"] == 300
    assert_matches_reference(report.metrics, expected, "train means, test decisions")


def test_a_head_class_without_samples_is_left_out_and_noted(
    write_dump: DumpWriter, random_problem: Problem
) -> None:
    """Class-level metrics use the classes present; the report names the absent ones."""
    keep = random_problem.labels != 6
    present = Problem(random_problem.features[keep], random_problem.labels[keep], random_problem.W[:6], None)
    expected = reference_metrics(present.features, present.labels, present.W, None)

    report = measure(
        write_dump(random_problem, features=present.features, labels=present.labels), device="cpu"
    )

    assert report.features["num_classes"] == 6
    assert any("have no samples (6)" in note for note in report.notes)
    for key in ALL_KEYS:
        if key != "nc4":  # the classifier's argmax still runs over all 7 head rows
            assert relative_difference(report.metrics[key], expected[key]) <= RTOL, key
