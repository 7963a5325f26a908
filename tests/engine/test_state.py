"""The merge protocol (nc_audit/engine/state.py): one generic merge for every streaming accumulator.

Generic contract, on a toy accumulator with every kind of state (a summed tensor, a summed int, an
optional state left out, a custom pair merged by the accumulator itself, a child accumulator):
- merge adds "sum" states, calls ``combine`` once for the "custom" ones and recurses into children;
- pack/unpack round-trips every state (dtypes, shapes, ints) into an independent copy;
- merge_all over shares in order equals one accumulator over all the rows.

Per accumulator (the real ones the passes use): the rows split into uneven shares, each share
accumulated alone, packed, unpacked and merged in order (the route ranks take), give the one-shot
accumulator over all rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import ClassVar

import numpy as np
import pytest
import torch
from conftest import make_random_problem

from nc_audit.core.class_stats import ClassStats
from nc_audit.distributed import DistributedContext
from nc_audit.engine import second_pass
from nc_audit.engine.accumulators import DecisionCounter, WithinProjection
from nc_audit.engine.first_pass import ShiftedSums
from nc_audit.engine.sample_stats import SampleLevelStats
from nc_audit.engine.second_pass import SecondPass
from nc_audit.engine.state import Accumulator, Reduction, merge, merge_all, pack, reduce_over_ranks, unpack
from nc_audit.metrics.collapse import centred_means

CPU = torch.device("cpu")


class Leaf(Accumulator):
    reductions: ClassVar[Mapping[str, Reduction]] = {"total": "sum", "rows": "sum"}

    def __init__(self) -> None:
        self.total = torch.zeros(3, dtype=torch.float64)
        self.rows = 0


class Toy(Accumulator):
    """Sums of rows, their count, an optional scatter it does not keep, a running maximum with the row
    that set it (custom: the two states merge together), and a Leaf child."""

    reductions: ClassVar[Mapping[str, Reduction]] = {
        "sums": "sum",
        "count": "sum",
        "unused": "sum",
        "peak": "custom",
        "peak_row": "custom",
    }
    children = ("leaf",)

    def __init__(self) -> None:
        self.sums = torch.zeros(2, 3, dtype=torch.float64)
        self.count = 0
        self.unused = None
        self.peak = torch.tensor(-float("inf"), dtype=torch.float64)
        self.peak_row = torch.tensor(-1, dtype=torch.int64)
        self.leaf = Leaf()
        self.combined = 0  # how often combine ran (not a state)

    def update(self, rows: torch.Tensor, first_index: int) -> Toy:
        self.sums[0] += rows.sum(0)
        self.sums[1] += (rows * rows).sum(0)
        self.count += rows.shape[0]
        top = int(rows.max(1).values.argmax())
        if rows[top].max() > self.peak:
            self.peak, self.peak_row = rows[top].max().clone(), torch.tensor(first_index + top)
        self.leaf.total += rows.abs().sum(0)
        self.leaf.rows += rows.shape[0]
        return self

    def combine(self, other: Toy) -> None:
        self.combined += 1
        if other.peak > self.peak:
            self.peak, self.peak_row = other.peak.clone(), other.peak_row.clone()


def toy_rows() -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).normal(size=(50, 3)))


def toy_shares(rows: torch.Tensor, cuts: tuple[int, ...] = (0, 7, 31, 50)) -> list[Toy]:
    return [Toy().update(rows[a:b], a) for a, b in itertools.pairwise(cuts)]


def assert_same_toy(actual: Toy, expected: Toy) -> None:
    torch.testing.assert_close(actual.sums, expected.sums, rtol=1e-14, atol=1e-14)
    assert actual.count == expected.count and isinstance(actual.count, int)
    assert actual.unused is None
    assert torch.equal(actual.peak, expected.peak) and torch.equal(actual.peak_row, expected.peak_row)
    torch.testing.assert_close(actual.leaf.total, expected.leaf.total, rtol=1e-14, atol=1e-14)
    assert actual.leaf.rows == expected.leaf.rows


# --- the generic protocol -----------------------------------------------------------------------------
def test_merging_shares_in_order_equals_one_accumulator_over_all_rows() -> None:
    rows = toy_rows()
    one_shot = Toy().update(rows, 0)
    merged = merge_all(toy_shares(rows))
    assert_same_toy(merged, one_shot)
    assert merged.combined == 2  # combine runs once per merge, for all custom states together


def test_pack_and_unpack_round_trip_every_state_into_an_independent_copy() -> None:
    share = toy_shares(toy_rows())[1]
    flat = pack(share)
    assert flat.dtype == torch.float64 and flat.ndim == 1
    assert flat.numel() == 6 + 1 + 1 + 1 + 3 + 1  # sums, count, peak, peak_row, leaf.total, leaf.rows
    copy = unpack(share, flat)
    assert_same_toy(copy, share)
    assert copy.peak_row.dtype == torch.int64 and copy.sums is not share.sums
    flat.zero_()
    share.sums.zero_()
    assert float(copy.sums.abs().sum()) > 0  # the copy owns its memory


def test_unpack_refuses_a_flat_state_of_the_wrong_size() -> None:
    share = Toy()
    with pytest.raises(ValueError, match="numbers"):
        unpack(share, torch.zeros(pack(share).numel() + 1, dtype=torch.float64))


def test_merge_refuses_shapes_that_differ_and_other_types() -> None:
    other = Toy()
    other.sums = torch.zeros(3, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"Toy.sums of shape \(3, 3\) into \(2, 3\)"):
        merge(Toy(), other)
    with pytest.raises(TypeError, match="cannot merge Leaf into Toy"):
        merge(Toy(), Leaf())  # type: ignore[arg-type]


def test_one_process_reduce_over_ranks_returns_the_accumulator_itself() -> None:
    share = Toy()
    assert reduce_over_ranks(share, DistributedContext()) is share


# --- every real accumulator: shares merged (through pack/unpack) equal the one-shot accumulator --------
PROBLEM = make_random_problem(seed=21, sizes=(40, 120))
H = torch.from_numpy(PROBLEM.features + 50.0)  # (N, d) offset so that centring matters
Y = torch.from_numpy(PROBLEM.labels)  # (N,)
C = PROBLEM.num_classes
STATS = ClassStats.from_batch(H, Y, C)
CUTS = (0, 101, 102, 460, H.shape[0])  # uneven shares, one of a single row


def shares_merged(
    make: Callable[[], Accumulator], update: Callable[[Accumulator, slice], None]
) -> Accumulator:
    """The route of the ranks: each share alone, packed, unpacked into a copy, merged in order."""
    shares = []
    for a, b in itertools.pairwise(CUTS):
        share = make()
        update(share, slice(a, b))
        shares.append(unpack(share, pack(share)))
    return merge_all(shares)


def one_shot(make: Callable[[], Accumulator], update: Callable[[Accumulator, slice], None]) -> Accumulator:
    accumulator = make()
    update(accumulator, slice(None))
    return accumulator


def test_shifted_sums_merge_to_the_one_shot_statistics() -> None:
    def make() -> ShiftedSums:
        return ShiftedSums(C, H.shape[1], CPU)

    def update(acc: ShiftedSums, rows: slice) -> None:
        acc.update(H[rows], Y[rows])

    merged, alone = shares_merged(make, update).class_stats(), one_shot(make, update).class_stats()
    assert torch.equal(merged.counts, alone.counts)
    for name in ("sums", "scatter", "sq_dev"):
        torch.testing.assert_close(getattr(merged, name), getattr(alone, name), rtol=1e-12, atol=1e-9)


def test_decision_counter_merges_to_the_one_shot_counts() -> None:
    present = STATS.present.nonzero().flatten()
    W, b = torch.from_numpy(PROBLEM.W), torch.from_numpy(PROBLEM.b)

    def make() -> DecisionCounter:
        return DecisionCounter(STATS.class_means[present], present, W, b)

    def update(acc: DecisionCounter, rows: slice) -> None:
        acc.update(H[rows], Y[rows])

    merged, alone = shares_merged(make, update), one_shot(make, update)
    fields = ("samples", "mismatches", "classifier_correct", "ncc_correct")
    assert [getattr(merged, f) for f in fields] == [getattr(alone, f) for f in fields]
    assert 0 < alone.mismatches < alone.samples  # a non-trivial count


def test_within_projection_merges_to_the_one_shot_projections() -> None:
    def make() -> WithinProjection:
        return WithinProjection(STATS.class_means, centred_means(STATS.subset(STATS.present)))

    def update(acc: WithinProjection, rows: slice) -> None:
        acc.update(H[rows], Y[rows])

    merged, alone = shares_merged(make, update), one_shot(make, update)
    assert merged.samples == alone.samples == H.shape[0]
    torch.testing.assert_close(merged.squared, alone.squared, rtol=1e-12, atol=0)
    assert merged.nc1() == pytest.approx(alone.nc1(), rel=1e-12)


@pytest.mark.parametrize("per_class", [True, False])
def test_sample_level_stats_merge_to_the_one_shot_sums(per_class: bool) -> None:
    def make() -> SampleLevelStats:
        return SampleLevelStats(STATS.global_mean, C, per_class=per_class)

    def update(acc: SampleLevelStats, rows: slice) -> None:
        acc.update(H[rows], Y[rows])

    merged, alone = shares_merged(make, update), one_shot(make, update)
    assert torch.equal(merged.counts, alone.counts)
    torch.testing.assert_close(merged.gram, alone.gram, rtol=1e-12, atol=1e-12)


def test_second_pass_merges_its_children_to_the_one_shot_pass() -> None:
    present = STATS.present.nonzero().flatten()
    W, b = torch.from_numpy(PROBLEM.W), torch.from_numpy(PROBLEM.b)

    def make() -> SecondPass:
        counter = DecisionCounter(STATS.class_means[present], present, W, b)
        projection = WithinProjection(STATS.class_means, centred_means(STATS.subset(STATS.present)))
        sample_stats = SampleLevelStats(STATS.global_mean, C)
        return SecondPass(counter, STATS.global_mean, sample_stats, projection)

    def update(acc: SecondPass, rows: slice) -> None:
        acc.update(H[rows], Y[rows])

    merged, alone = shares_merged(make, update), one_shot(make, update)
    assert merged.counter.samples == alone.counter.samples == H.shape[0]
    assert merged.counter.mismatches == alone.counter.mismatches
    torch.testing.assert_close(merged.projection.squared, alone.projection.squared, rtol=1e-12, atol=0)
    torch.testing.assert_close(merged.sample_stats.gram, alone.sample_stats.gram, rtol=1e-12, atol=1e-12)
    assert merged.nonfinite_rows == alone.nonfinite_rows == 0


@pytest.mark.parametrize("route", ["shares", "replicas"])
def test_second_pass_float32_states_merge_to_the_one_shot_pass(
    route: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The float32 decision route's states (doubtful rows, spilled rows) and its counts: shares packed and
    unpacked (ranks), or worker replicas sharing the read-only tables (workers), with blocks of 16 rows,
    merge to the one-shot pass. A duplicated head row makes ties (doubtful rows) on every row of its class.
    Every block re-decides all its rows here: how many spill past a smaller capacity depends on where
    the blocks fall (only whether any spilled matters, test_float32_decisions.py)."""
    monkeypatch.setattr(second_pass, "REDECIDE_SHARE", 1)
    present = STATS.present.nonzero().flatten()
    W, b = torch.from_numpy(PROBLEM.W).clone(), torch.from_numpy(PROBLEM.b).clone()
    W[1], b[1] = W[0], b[0]

    def make() -> SecondPass:
        counter = DecisionCounter(STATS.class_means[present], present, W, b)
        projection = WithinProjection(STATS.class_means, centred_means(STATS.subset(STATS.present)))
        second = SecondPass(counter, STATS.global_mean, None, projection, float32=True)
        second.rows_per_block = 16  # several blocks per share
        return second

    def update(acc: SecondPass, rows: slice) -> None:
        acc.update(H[rows], Y[rows])

    alone = one_shot(make, update)
    if route == "shares":
        merged = shares_merged(make, update)
    else:
        main = make()
        parts = [main] + [main.replica() for _ in range(len(CUTS) - 2)]
        assert all(part.tables is main.tables for part in parts)  # shared, not copied
        for part, (a, b_) in zip(parts, itertools.pairwise(CUTS), strict=True):
            update(part, slice(a, b_))
        merged = merge_all(parts)
    assert int(alone.uncertain) > 0  # the ties were seen
    for name in ("uncertain", "spilled", "nonfinite"):
        assert int(getattr(merged, name)) == int(getattr(alone, name)), name
    fields = ("samples", "mismatches", "classifier_correct", "ncc_correct")
    assert [getattr(merged.counter, f) for f in fields] == [getattr(alone.counter, f) for f in fields]
    torch.testing.assert_close(merged.projection.squared, alone.projection.squared, rtol=1e-12, atol=0)
