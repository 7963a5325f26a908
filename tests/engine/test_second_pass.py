"""The fused second pass (one GEMM per block on global-mean-centred rows, one replica per worker) against
the unfused per-object updates on the whole array: same NC4 counts, same NC1 projections (1e-12), same
sample-level scatters, whatever the worker count and the chunking."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import DumpWriter, make_random_problem

from nc_audit.core.class_stats import ClassStats
from nc_audit.core.progress import SilentTracker
from nc_audit.engine import passes
from nc_audit.engine.accumulators import DecisionCounter, WithinProjection
from nc_audit.engine.passes import accumulate_stats, count_decisions
from nc_audit.engine.sample_stats import SampleLevelStats
from nc_audit.engine.second_pass import SecondPass
from nc_audit.io.checkpoints.load import Head
from nc_audit.io.dumps.reader import resolve_split
from nc_audit.metrics.collapse import centred_means

CPU = torch.device("cpu")


def unfused(
    H: torch.Tensor, y: torch.Tensor, stats: ClassStats, head: Head
) -> tuple[DecisionCounter, WithinProjection, SampleLevelStats]:
    """The three second-pass objects updated the plain way, on all rows at once."""
    present = stats.present.nonzero().flatten()
    counter = DecisionCounter(stats.class_means[present], present, head.weight, head.bias)
    counter.update(H, y)
    projection = WithinProjection(stats.class_means, centred_means(stats.subset(stats.present)))
    projection.update(H, y)
    sample_stats = SampleLevelStats(stats.global_mean, stats.num_classes).update(H, y)
    return counter, projection, sample_stats


def counts(counter: DecisionCounter) -> list[int]:
    return [counter.samples, counter.mismatches, counter.classifier_correct, counter.ncc_correct]


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("offset", [0.0, 1e7])
def test_fused_second_pass_equals_the_plain_updates(
    write_dump: DumpWriter, monkeypatch: pytest.MonkeyPatch, workers: int, offset: float
) -> None:
    """2,000 rows in 64-row chunks (so both workers get chunks and their replicas are merged), features
    offset by 0 or 1e7: without the centring on μ_G the NC1 projections would lose ~1e-9 to cancellation.
    The worker count is forced (a one-core machine would otherwise run one worker) and checked."""
    problem = make_random_problem(seed=5, sizes=(200, 400))
    problem = dataclasses.replace(problem, features=problem.features + offset)
    dump = write_dump(problem)
    info = resolve_split(dump, None)
    head = Head("head", torch.from_numpy(problem.W), torch.from_numpy(problem.b))
    monkeypatch.setattr(passes, "worker_count", lambda device: workers)
    replicas: list[SecondPass] = []
    replica = SecondPass.replica
    monkeypatch.setattr(SecondPass, "replica", lambda self: replicas.append(replica(self)) or replicas[-1])
    stats = accumulate_stats(info, head.num_classes, CPU, SilentTracker(), chunk_rows=64)
    projection = WithinProjection(stats.class_means, centred_means(stats.subset(stats.present)))
    sample_stats = SampleLevelStats(stats.global_mean, stats.num_classes)
    second = count_decisions(
        info, stats, head, CPU, SilentTracker(), 64, sample_stats=sample_stats, projection=projection
    )
    assert len(replicas) == workers - 1  # the pass ran with `workers` workers
    assert all(part.counter.samples > 0 for part in replicas)  # and each replica saw rows
    H, y = torch.from_numpy(problem.features), torch.from_numpy(problem.labels)
    plain_counter, plain_projection, plain_sample_stats = unfused(H, y, stats, head)
    counter = second.counter
    assert counter.samples == len(problem.labels)
    assert counts(counter) == counts(plain_counter)
    assert 0 < counter.classifier_correct < counter.samples  # a non-trivial decision problem
    assert second.projection.samples == plain_projection.samples
    torch.testing.assert_close(second.projection.squared, plain_projection.squared, rtol=1e-12, atol=0)
    torch.testing.assert_close(second.sample_stats.counts, plain_sample_stats.counts, rtol=0, atol=0)
    torch.testing.assert_close(second.sample_stats.gram, plain_sample_stats.gram, rtol=1e-12, atol=1e-12)


def test_nonfinite_rows_of_the_second_split_are_counted(write_dump: DumpWriter) -> None:
    """Rows with NaN/Inf seen only by the second pass (another split than the means') are counted
    across workers, and the pass fails with the exact count."""
    from nc_audit.core.errors import InputError

    problem = make_random_problem(seed=6, sizes=(200, 300))
    features = problem.features.copy()
    bad = np.random.default_rng(0).choice(len(features), size=9, replace=False)
    features[bad[:5], 3] = np.nan
    features[bad[5:], 0] = np.inf
    clean = resolve_split(write_dump(problem, "clean.h5"), None)
    dirty = resolve_split(write_dump(problem, "dirty.h5", features=features), None)
    head = Head("head", torch.from_numpy(problem.W), torch.from_numpy(problem.b))
    stats = accumulate_stats(clean, head.num_classes, CPU, SilentTracker(), chunk_rows=64)
    with pytest.raises(InputError, match=rf"9 of {len(features)} feature rows hold NaN or Inf"):
        count_decisions(dirty, stats, head, CPU, SilentTracker(), 64)


def test_sample_level_scatters_centred_on_another_mean(write_dump: DumpWriter) -> None:
    """When K_Z is centred on another split's mean than the pass's μ_G (measure --split test), the fused
    pass must not reuse its own h − μ_G: the scatters still equal the plain update about that mean."""
    problem = make_random_problem(seed=8, sizes=(200, 300))
    info = resolve_split(write_dump(problem), None)
    head = Head("head", torch.from_numpy(problem.W), torch.from_numpy(problem.b))
    stats = accumulate_stats(info, head.num_classes, CPU, SilentTracker(), chunk_rows=64)
    other_mean = stats.global_mean + 0.5  # (d,)
    sample_stats = SampleLevelStats(other_mean, stats.num_classes)
    second = count_decisions(info, stats, head, CPU, SilentTracker(), 64, sample_stats=sample_stats)
    H, y = torch.from_numpy(problem.features), torch.from_numpy(problem.labels)
    plain = SampleLevelStats(other_mean, stats.num_classes).update(H, y)
    torch.testing.assert_close(second.sample_stats.counts, plain.counts, rtol=0, atol=0)
    torch.testing.assert_close(second.sample_stats.gram, plain.gram, rtol=1e-12, atol=1e-12)
