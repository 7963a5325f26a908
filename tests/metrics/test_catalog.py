"""The metric catalog (nc_audit.metrics.catalog) lists exactly what a report can hold: every key that
``--fail-on`` accepts is measured, so no rule can only ever fail "not measured"."""

from __future__ import annotations

import numpy as np
import pytest

import nc_audit
from nc_audit.core.errors import InputError
from nc_audit.metrics.catalog import METRICS


def _separated_classes(num_classes: int = 3, per_class: int = 20, dim: int = 5) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    means = 4.0 * rng.normal(size=(num_classes, dim))
    labels = np.repeat(np.arange(num_classes), per_class)
    features = means[labels] + rng.normal(size=(labels.size, dim))
    return features, labels, means + 0.1 * rng.normal(size=means.shape)


def test_every_catalog_key_is_measured_and_gateable() -> None:
    features, labels, head = _separated_classes()
    rules = [f"{key} >= -1000000" for key in METRICS]
    report = nc_audit.measure_arrays(features, labels, head, sample_level=True, fail_on=rules)
    assert len(report.checks) == len(METRICS)
    assert report.passed, [check for check in report.checks if not check["passed"]]


@pytest.mark.parametrize("key", ["accuracy_train", "accuracy_test"])
def test_keys_no_report_holds_are_refused_with_the_closest_one(key: str) -> None:
    features, labels, head = _separated_classes()
    with pytest.raises(InputError, match=rf"unknown metric '{key}'.*did you mean 'accuracy'\?"):
        nc_audit.measure_arrays(features, labels, head, fail_on=[f"{key} >= 0.5"])
