"""The float32 decision route (nc_audit/engine/decision_bound.py, decisions.py, second_pass.py): its error
bound holds, and the decisions it returns are exactly the float64 ones — on random data, on constructed
near-ties just above and below the bound, on exact ties (duplicated classes), with classes tiled, and when
more rows are doubtful than a block re-decides (the pass then recounts in float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import DumpWriter, Problem, make_random_problem

from nc_audit.core.progress import SilentTracker
from nc_audit.engine import blocks, passes, second_pass
from nc_audit.engine.accumulators import DecisionCounter, WithinProjection
from nc_audit.engine.decision_bound import MarginBound
from nc_audit.engine.passes import accumulate_stats, count_decisions
from nc_audit.engine.second_pass import SecondPass
from nc_audit.io.checkpoints.load import Head
from nc_audit.io.dumps.reader import resolve_split
from nc_audit.metrics.collapse import centred_means

CPU = torch.device("cpu")


@pytest.mark.parametrize("scale", [1.0, 1e30, 1e-30, 1e-20])
@pytest.mark.parametrize("d", [3, 64, 700])
def test_the_float32_error_bound_holds(scale: float, d: int) -> None:
    """|ŝ₃₂ − s| ≤ half the threshold (the threshold covers two scores), for random scores of every sign,
    with magnitudes where float32 products underflow (1e-30, 1e-20) or come close to overflowing."""
    generator = torch.Generator().manual_seed(d)
    x = torch.randn(400, d, generator=generator, dtype=torch.float64) * scale
    a = torch.randn(50, d, generator=generator, dtype=torch.float64)
    a[0] *= 1e-3  # rows of very different norms
    beta = torch.randn(50, generator=generator, dtype=torch.float64) * scale
    exact = x @ a.T + beta  # float64: 1e-16 relative, far below the float32 bound
    approx = (x.float() @ a.float().T + beta.float()).double()
    bound = MarginBound.of(d, float(a.norm(dim=1).max()), float(beta.abs().max()))
    half = (x.norm(dim=1) * bound.slope + bound.offset)[:, None] / 2
    assert torch.isfinite(approx).all()
    assert ((approx - exact).abs() <= half).all()
    assert ((approx - exact).abs().max() > 0) or scale < 1e-19  # float32 does lose something here


def near_tie_rows(M: torch.Tensor, steps: list[float], generator: torch.Generator) -> torch.Tensor:
    """Rows x with score_a − score_b = t exactly in real arithmetic for scores x·m − ‖m‖²/2, for pairs
    (a, b) of classes and every t in ``steps`` (relative to ‖m_a − m_b‖·‖x‖-ish magnitudes)."""
    rows = []
    C, d = M.shape
    for a in range(C):
        for b in range(C):
            diff = M[a] - M[b]
            if not bool(diff.any()):  # the same class, or a duplicated one: exact ties come from others
                continue
            middle = (M[a] + M[b]) / 2
            noise = torch.randn(d, generator=generator, dtype=torch.float64)
            noise -= (noise @ diff) / (diff @ diff) * diff  # along the bisector
            base = middle + 0.1 * noise
            for t in steps:
                rows.append(base + t * float(diff.norm() * base.norm()) * diff / (diff @ diff))
    return torch.stack(rows)


def tables_problem(C: int = 6, d: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Means M (C, d) with a duplicated class (rows 4 and 5 equal: exact ties) and the self-dual head
    W = M, b = −‖m‖²/2, so that the head's scores are the nearest-mean scores: near ties in both."""
    generator = torch.Generator().manual_seed(seed)
    M = 10.0 * torch.randn(C, d, generator=generator, dtype=torch.float64)
    M[5] = M[4]
    return M, -0.5 * (M * M).sum(1)


def float64_decisions(x: torch.Tensor, M: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The plain float64 argmax (first index on ties), one GEMM, no tiling."""
    return (x @ M.T + b).argmax(1)


@pytest.mark.parametrize("budget", [None, 2048], ids=["one-tile", "tiled"])
def test_float32_route_equals_float64_on_near_ties(
    monkeypatch: pytest.MonkeyPatch, budget: int | None
) -> None:
    """Rows at score gaps of 0, ±1e-10..±1e-4 (relative) and at 0.5–4 × the bound, exact ties between two
    identical classes: every decision equals the float64 one, although plain float32 gets some wrong.
    Nearly every row is doubtful here, so every row of a block is re-decided (capacity: the whole block;
    the capacity's spill is the next test's)."""
    monkeypatch.setattr(second_pass, "REDECIDE_SHARE", 1)
    if budget is not None:  # a few classes per tile and 16-row blocks: the running top-2 across tiles
        monkeypatch.setattr(blocks, "CPU_PRODUCT_BYTES", budget)
    M, b = tables_problem()
    generator = torch.Generator().manual_seed(1)
    d = M.shape[1]
    probe = MarginBound.of(d, float(M.norm(dim=1).max()), float(b.abs().max()))
    relative = probe.slope / float(M.norm(dim=1).max())  # the bound relative to ‖x‖·‖m‖
    steps = [0.0] + [s * v for v in (1e-10, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4) for s in (1, -1)]
    steps += [s * r * relative for r in (0.5, 0.9, 1.1, 2.0, 4.0) for s in (1, -1)]
    x = near_tie_rows(M, steps, generator)  # (28·len(steps), d)
    assert torch.isfinite(x).all()
    counter = DecisionCounter(M, torch.arange(M.shape[0]), M, b)
    sp = SecondPass(counter, torch.zeros(d, dtype=torch.float64), float32=True)
    expected = float64_decisions(x, M, b)
    predicted, nearest, certified = [], [], 0
    for begin in range(0, x.shape[0], sp.rows_per_block):
        block = x[begin : begin + sp.rows_per_block]
        norms = block.norm(dim=1)
        # the float32 decisions the bound certifies are the float64 ones (before any re-decision)
        for problem, (best, second, index) in zip(
            sp.tables.problems, sp.tables.top2_32(block.float(), sp._scratch), strict=True
        ):
            ok = problem.bound.certified(best, second, norms)
            assert torch.equal(index[ok], expected[begin : begin + sp.rows_per_block][ok])
            certified += int(ok.sum())
        head, means = sp._decide32(block, norms)
        predicted.append(head)
        nearest.append(means)
    assert 0 < certified < 2 * x.shape[0]  # some rows certified by float32, some doubtful
    assert torch.equal(torch.cat(predicted), expected)
    assert torch.equal(torch.cat(nearest), expected)
    assert int(sp.uncertain) > 0 and int(sp.spilled) == 0
    plain32 = (x.float() @ M.float().T + b.float()).argmax(1)
    assert (plain32 != expected).any()  # the data is adversarial: float32 alone is wrong on some rows
    assert (expected == 5).sum() == 0  # the duplicated class: ties resolved to the first index, as float64


def write_problem(write_dump: DumpWriter, problem: Problem, name: str) -> tuple[Head, object]:
    info = resolve_split(write_dump(problem, name, feature_dtype=np.float32), None)
    return Head("head", torch.from_numpy(problem.W), torch.from_numpy(problem.b)), info


def counts(second: SecondPass) -> list[int]:
    c = second.counter
    return [c.samples, c.mismatches, c.classifier_correct, c.ncc_correct]


@pytest.mark.parametrize("workers", [1, 2])
def test_float32_route_equals_float64_through_the_pass(
    write_dump: DumpWriter, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """Random data through count_decisions: the same counts and NC1 projections on both routes."""
    monkeypatch.setattr(passes, "worker_count", lambda device: workers)
    problem = make_random_problem(seed=11, num_classes=9, feature_dim=20, sizes=(100, 300))
    head, info = write_problem(write_dump, problem, "random.h5")
    stats = accumulate_stats(info, head.num_classes, CPU, SilentTracker(), chunk_rows=128)
    results = []
    for float32 in (True, False):
        projection = WithinProjection(stats.class_means, centred_means(stats.subset(stats.present)))
        results.append(
            count_decisions(
                info, stats, head, CPU, SilentTracker(), 128, projection=projection, float32=float32
            )
        )
    assert results[0].tables.float32 and not results[1].tables.float32
    assert counts(results[0]) == counts(results[1])
    assert 0 < results[0].counter.mismatches < results[0].counter.samples
    torch.testing.assert_close(
        results[0].projection.squared, results[1].projection.squared, rtol=1e-13, atol=0
    )


def test_doubtful_rows_beyond_the_capacity_are_recounted_in_float64(
    write_dump: DumpWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The near-tie rows above in a float64 dump, the head W = M, b = −‖m‖²/2: with one re-decided row per
    block the other doubtful rows spill, and each such chunk is recounted in float64 from the rows in hand:
    the float64 counts, with and without a decision subset, with one and two workers; and, as on an
    accelerator (no read per chunk), by one float64 recount of the pass. Without the recount the float32
    decisions of the spilled rows would be counted (some are wrong)."""
    M, b = tables_problem()
    steps = [0.0] + [s * v for v in (1e-10, 1e-8, 1e-7, 1e-6) for s in (1, -1)]
    x = near_tie_rows(M, steps, torch.Generator().manual_seed(2))
    labels = np.arange(x.shape[0]) % M.shape[0]
    problem = Problem(x.numpy(), labels, M.numpy(), b.numpy())
    info = resolve_split(write_dump(problem, "ties.h5"), None)
    head = Head("head", M, b)
    stats = accumulate_stats(info, head.num_classes, CPU, SilentTracker(), chunk_rows=64)
    monkeypatch.setattr(second_pass, "REDECIDE_SHARE", 10**9)
    monkeypatch.setattr(second_pass, "REDECIDE_MIN", 1)
    for workers, per_chunk in ((1, True), (2, True), (2, False)):
        monkeypatch.setattr(passes, "worker_count", lambda device, w=workers: w)
        if not per_chunk:  # as on an accelerator: the whole pass recounted once, after it

            def accelerator_like(
                self: SecondPass, *args: object, _init: object = SecondPass.__init__, **kwargs: object
            ) -> None:
                _init(self, *args, **kwargs)  # type: ignore[operator]
                self.recounts_chunks = False

            monkeypatch.setattr(SecondPass, "__init__", accelerator_like)
        for subset in (None, 150):
            expected = count_decisions(
                info, stats, head, CPU, SilentTracker(), 64, float32=False, decision_samples=subset
            )
            result = count_decisions(
                info, stats, head, CPU, SilentTracker(), 64, float32=True, decision_samples=subset
            )
            assert result.tables.float32 and result.spilled_rows > 0  # spilled, so recounted
            assert counts(result) == counts(expected)
