"""The SLQ schedule follows the error target (nc_audit.metrics.factored, nc_audit.metrics.slq): probes after
the first block as many as the target predicts, Lanczos steps until the quadratures stop moving; the
interval still covers the exact joint entropy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from reference import gram, information
from test_class_routes import random_rows

from nc_audit.metrics.factored import (
    PROBE_BLOCK,
    ExplicitHadamard,
    next_block,
    slq_joint_entropy,
    t_quantile_95,
)
from nc_audit.metrics.slq import LANCZOS_STEPS, MIN_STEPS, lanczos_quadrature


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Small operators: one thread (two OpenMP threads on shared, loaded cores spin-wait 30× longer)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(("dof", "exact"), [(4, 2.776445), (6, 2.446912), (10, 2.228139), (30, 2.042272)])
def test_t_quantile_matches_student_t(dof: int, exact: float) -> None:
    """Exact values: scipy.stats.t.ppf(0.975, dof)."""
    assert t_quantile_95(dof) == pytest.approx(exact, rel=3e-3)


def test_next_block_is_what_the_target_predicts_within_bounds() -> None:
    # 1.96·1/0.1 → 385 probes needed, 8 in hand: capped at one PROBE_BLOCK
    assert next_block(8, 1.0, 0.1, min_probes=8, max_probes=512) == PROBE_BLOCK
    # (1.96·0.05/0.02)² = 24.01 → 25 needed, 8 in hand → 17
    assert next_block(8, 0.05, 0.02, min_probes=8, max_probes=512) == 17
    assert next_block(16, 0.05, 0.02, min_probes=8, max_probes=512) == 9
    assert next_block(24, 0.05, 0.02, min_probes=8, max_probes=512) == 8  # at least min_probes
    assert next_block(508, 1.0, 0.1, min_probes=8, max_probes=512) == 4  # at most the probes left
    assert (
        next_block(1, float("inf"), 0.1, min_probes=1, max_probes=512) == PROBE_BLOCK
    )  # one probe: no spread
    assert next_block(1, float("nan"), 0.1, min_probes=1, max_probes=8) == 7


def test_lanczos_stops_once_its_quadratures_settle() -> None:
    """With a target the quadrature stops early on a well-conditioned operator and agrees with the full
    run far within the target; without one it takes every step."""
    W, M = random_rows(300, 20, seed=3)
    operator = ExplicitHadamard(W, M, budget_bytes=2**26)
    V = (2 * torch.randint(0, 2, (300, 6), generator=torch.Generator().manual_seed(0)) - 1).to(torch.float32)
    full = lanczos_quadrature(operator, V, LANCZOS_STEPS)
    early = lanczos_quadrature(operator, V, LANCZOS_STEPS, atol=1e-4)
    assert full.steps == LANCZOS_STEPS
    assert MIN_STEPS <= early.steps < LANCZOS_STEPS
    assert torch.allclose(early.values, full.values, rtol=0, atol=1e-4)


def test_default_schedule_interval_covers_the_exact_value_on_20_seeds() -> None:
    """The adaptive schedule (8 probes, then what the target predicts; steps to the target) keeps a 95%
    interval: on 20 seeds at least 17 cover the exact H(K_W∘K_M) (P(fewer | 95%) < 2%)."""
    C, d = 120, 16
    W, M = random_rows(C, d, seed=7)
    exact = information(gram(W.numpy()), gram(M.numpy()))
    h_joint = exact["h1"] + exact["h2"] - exact["mi"]
    covered, probes = 0, set()
    for seed in range(20):
        estimate = slq_joint_entropy(W, M, explicit=True, tol=0.03, budget_bytes=2**26, seed=seed)
        assert estimate.half_width <= 0.03 or estimate.probes >= 512
        assert estimate.steps is not None and estimate.steps <= LANCZOS_STEPS
        probes.add(estimate.probes)
        covered += abs(estimate.estimate - h_joint) <= estimate.half_width
    assert covered >= 17, covered
    assert min(probes) >= 8
