"""ClassStats are exact, streaming and mergeable: any chunking or sharding gives the one-shot statistics.

Chan, Golub & LeVeque's pairwise update makes merge(a, b) the statistics of the union, so the report
must not depend on how the dump is chunked, and shards (ranks) may be merged in any order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from reference import ALL_KEYS, Problem, relative_difference

from nc_audit.core.class_stats import ClassStats
from nc_audit.measure.api import measure

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


# --- merging ----------------------------------------------------------------------------------------
def test_two_merged_halves_equal_one_shot(random_problem: Problem) -> None:
    half = random_problem.num_samples // 2
    merged = stats_of(random_problem, slice(None, half)).merge(stats_of(random_problem, slice(half, None)))
    assert_stats_equal(merged, stats_of(random_problem))


def test_merge_order_does_not_matter(random_problem: Problem) -> None:
    shards = [
        stats_of(random_problem, slice(start, start + 150))
        for start in range(0, random_problem.num_samples, 150)
    ]
    forward = shards[0]
    for shard in shards[1:]:
        forward = forward.merge(shard)
    backward = shards[-1]
    for shard in reversed(shards[:-1]):
        backward = backward.merge(shard)
    tree = shards
    while len(tree) > 1:  # pairwise, as a reduction over ranks would
        tree = [tree[i].merge(tree[i + 1]) if i + 1 < len(tree) else tree[i] for i in range(0, len(tree), 2)]
    one_shot = stats_of(random_problem)
    assert_stats_equal(forward, one_shot)
    assert_stats_equal(backward, one_shot)
    assert_stats_equal(tree[0], one_shot)
    assert_stats_equal(shards[0].merge(shards[1]), shards[1].merge(shards[0]))


def test_an_empty_shard_merges_as_the_identity(random_problem: Problem) -> None:
    stats = stats_of(random_problem)
    empty = ClassStats.empty(random_problem.num_classes, random_problem.feature_dim)
    assert_stats_equal(stats.merge(empty), stats, rtol=0.0)
    assert_stats_equal(empty.merge(stats), stats, rtol=0.0)
    assert_stats_equal(empty.merge(empty), empty, rtol=0.0)


def test_shards_may_lack_classes(random_problem: Problem) -> None:
    """A shard without classes 2 and 5 (and one holding only those) merge into the one-shot statistics."""
    labels = random_problem.labels
    only_two_classes = np.isin(labels, [2, 5])
    without = stats_of(random_problem, ~only_two_classes)
    with_only = stats_of(random_problem, only_two_classes)
    assert without.counts[2] == without.counts[5] == 0
    assert int(with_only.present.sum()) == 2

    assert_stats_equal(without.merge(with_only), stats_of(random_problem))
    assert_stats_equal(with_only.merge(without), stats_of(random_problem))


def test_update_streams_batches_in_place(random_problem: Problem) -> None:
    stats = ClassStats.empty(random_problem.num_classes, random_problem.feature_dim)
    for start in range(0, random_problem.num_samples, 64):
        rows = slice(start, start + 64)
        features = torch.from_numpy(random_problem.features[rows]).to(torch.float32)  # any float dtype
        returned = stats.update(features, torch.from_numpy(random_problem.labels[rows]))
        assert returned is stats
    as_float32 = Problem(
        random_problem.features.astype(np.float32).astype(np.float64),
        random_problem.labels,
        random_problem.W,
        None,
    )
    assert_stats_equal(stats, stats_of(as_float32))


def test_merging_statistics_of_different_shapes_is_an_error(random_problem: Problem) -> None:
    stats = stats_of(random_problem)
    with pytest.raises(ValueError, match="cannot merge"):
        stats.merge(ClassStats.empty(random_problem.num_classes + 1, random_problem.feature_dim))


def test_pack_unpack_round_trip(random_problem: Problem) -> None:
    stats = stats_of(random_problem)
    flat = stats.pack()
    C, d = random_problem.num_classes, random_problem.feature_dim
    assert flat.shape == (C + C * d + d * d + C,) and flat.dtype == torch.float64
    restored = ClassStats.unpack(flat, C, d)
    assert_stats_equal(restored, stats, rtol=0.0)
    flat.zero_()  # the unpacked statistics own their memory
    assert_stats_equal(restored, stats, rtol=0.0)


# --- chunked reading ----------------------------------------------------------------------------------
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
