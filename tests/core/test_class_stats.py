"""ClassStats hold exactly the statistics docs/METRICS.md defines, and a measurement does not depend on how its
dump is chunked. (How workers and ranks merge the streamed sums: tests/engine/test_state.py and
tests/engine/test_first_pass.py.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from reference import ALL_KEYS, Problem, relative_difference

from nc_audit.core.class_stats import ClassStats
from nc_audit.measurement.api import measure

TIGHT = 1e-12


def relative_error(actual: torch.Tensor | np.ndarray, expected: torch.Tensor | np.ndarray) -> float:
    """max |actual − expected| / max |expected| (entrywise errors relative to the array's scale)."""
    a, e = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape
    scale = np.abs(e).max()
    return float(np.abs(a - e).max() / scale) if scale > 0 else float(np.abs(a).max())


def assert_stats_equal(actual: ClassStats, expected: ClassStats, rtol: float = TIGHT) -> None:
    """Counts equal exactly; sums, scatter and sq_dev to ``rtol`` relative to their largest entry."""
    assert torch.equal(actual.counts, expected.counts)
    for name in ("sums", "scatter", "sq_dev"):
        a, e = getattr(actual, name), getattr(expected, name)
        assert a.dtype == torch.float64, name
        assert relative_error(a, e) <= rtol, (name, relative_error(a, e))


def stats_of(problem: Problem, rows: slice | np.ndarray = slice(None)) -> ClassStats:
    features = torch.from_numpy(problem.features[rows])  # (n, d)
    labels = torch.from_numpy(problem.labels[rows])  # (n,)
    return ClassStats.from_batch(features, labels, problem.num_classes)


# --- one batch against the definitions ------------------------------------------------------------
def test_from_batch_holds_counts_sums_centred_scatter_and_squared_deviations(random_problem: Problem) -> None:
    H, y, C = random_problem.features, random_problem.labels, random_problem.num_classes
    mu = np.stack([H[y == c].mean(0) for c in range(C)])  # (C, d)
    D = H - mu[y]  # (N, d)
    stats = stats_of(random_problem)

    np.testing.assert_array_equal(stats.counts.numpy(), np.bincount(y, minlength=C))
    assert relative_error(stats.sums, np.stack([H[y == c].sum(0) for c in range(C)])) <= TIGHT
    assert relative_error(stats.scatter, D.T @ D) <= TIGHT
    assert relative_error(stats.sq_dev, [np.sum(D[y == c] ** 2) for c in range(C)]) <= TIGHT
    assert relative_error(stats.class_means, mu) <= TIGHT
    assert relative_error(stats.within_cov, D.T @ D / len(y)) <= TIGHT
    assert (
        relative_error(stats.class_variances, [np.mean(np.sum(D[y == c] ** 2, 1)) for c in range(C)]) <= TIGHT
    )


def test_global_mean_is_sample_weighted_not_the_mean_of_class_means(random_problem: Problem) -> None:
    stats = stats_of(random_problem)
    assert relative_error(stats.global_mean, random_problem.features.mean(0)) <= TIGHT
    unweighted = stats.class_means.mean(0)
    assert float((stats.global_mean - unweighted).abs().max()) > 1e-3  # unbalanced classes: they differ


# --- streaming: the report does not depend on the chunking --------------------------------------------
@pytest.mark.parametrize("chunk_rows", [1, 7, 64, "N"])
def test_chunked_reading_gives_the_one_chunk_report(
    random_dump: Path, random_problem: Problem, chunk_rows: int | str
) -> None:
    rows = random_problem.num_samples if chunk_rows == "N" else int(chunk_rows)
    one_chunk = measure(random_dump, device="cpu", chunk_rows=10 * random_problem.num_samples)
    chunked = measure(random_dump, device="cpu", chunk_rows=rows)

    assert chunked.features == one_chunk.features
    assert chunked.details == one_chunk.details
    for key in ALL_KEYS:
        assert relative_difference(chunked.metrics[key], one_chunk.metrics[key]) <= TIGHT, key
