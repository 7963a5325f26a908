"""The class-level routes for large C (nc_audit.metrics.routes): the factored, Kronecker, SLQ and tiled
kernels agree with the dense C×C ones, and measure states the route it took."""

from __future__ import annotations

import math

import pytest
import torch
from reference import gram, information, mir_nc

from nc_audit.core.linalg import pairwise_upper
from nc_audit.metrics.collapse import equiangular, maxangle
from nc_audit.metrics.factored import (
    ExplicitHadamard,
    FactoredHadamard,
    kronecker_gram,
    slq_joint_entropy,
    smaller_gram_entropy,
)
from nc_audit.metrics.information import routed_information
from nc_audit.metrics.routes import DENSE_MAX_C, plan_routes
from nc_audit.metrics.tiled import tiled_angles, tiled_cdnv, tiled_means_pairs, upper_tiles

KEYS = ("h_head", "h_means", "mi", "mir", "hdr")


def random_rows(C: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A head W and centred means M (C, d) that are correlated (so MI is far from 0), float64."""
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(C, d, generator=g, dtype=torch.float64) * torch.linspace(0.3, 2.0, d, dtype=torch.float64)
    W = M + 0.7 * torch.randn(C, d, generator=g, dtype=torch.float64)
    return W, M - M.mean(0)


@pytest.mark.parametrize(("C", "d"), [(900, 12), (1100, 30)], ids=["d2<C", "d2<C-larger"])
def test_factored_route_equals_dense_when_d_squared_fits(C: int, d: int) -> None:
    """d² ≤ C: every information metric exact on the factored route, to 1e-10 of the dense eigvalsh."""
    W, M = random_rows(C, d, seed=C)
    dense = routed_information(W[None], M[None])[0].metrics
    routes = plan_routes(C, d, 1, "factored")
    assert routes.joint == "kronecker"
    factored = routed_information(W[None], M[None], routes)[0]
    assert factored.interval == {}
    for key in KEYS:
        assert factored.metrics[key] == pytest.approx(dense[key], abs=1e-10), key


@pytest.mark.parametrize(("C", "d"), [(150, 20), (40, 300)], ids=["d2>C", "d>C"])
def test_smaller_gram_entropies_equal_dense_when_d_squared_exceeds_c(C: int, d: int) -> None:
    """d² > C (and even d > C): H(K_W), H(K_M) and HDR stay exact; MI within its SLQ interval."""
    W, M = random_rows(C, d, seed=d)
    dense = routed_information(W[None], M[None])[0].metrics
    assert smaller_gram_entropy(W) == pytest.approx(dense["h_head"], abs=1e-10)
    assert smaller_gram_entropy(M) == pytest.approx(dense["h_means"], abs=1e-10)
    routes = plan_routes(C, d, 1, "factored")
    assert routes.joint == "slq" and routes.slq_matvec == "factored"
    result = routed_information(W[None], M[None], routes)[0]
    for key in ("h_head", "h_means", "hdr"):
        assert result.metrics[key] == pytest.approx(dense[key], abs=1e-10), key
    assert abs(result.metrics["mi"] - dense["mi"]) <= 2 * result.interval["mi"]


def test_kronecker_gram_is_z_transpose_z_for_any_block_size() -> None:
    W, M = random_rows(23, 4, seed=2)
    Z = (W[:, :, None] * M[:, None, :]).reshape(23, 16)
    for budget in (1, 4 * 8 * 16 * 5, 2**30):  # one row per block, 5 rows (23 = 4·5 + 3), all rows
        assert torch.allclose(kronecker_gram(W, M, budget), Z.T @ Z, rtol=0, atol=1e-12)


def test_hadamard_matvecs_equal_the_dense_product() -> None:
    """Both SLQ operators apply (K_W∘K_M)/C without error beyond float32 rounding."""
    W, M = random_rows(97, 7, seed=5)
    K = torch.tensor(gram(W.numpy()) * gram(M.numpy()) / 97, dtype=torch.float64)
    V = torch.randn(97, 5, dtype=torch.float32, generator=torch.Generator().manual_seed(1))
    expected = K @ V.to(torch.float64)
    for operator in (FactoredHadamard(W, M), ExplicitHadamard(W, M, budget_bytes=4 * 97 * 8 * 3)):
        assert torch.allclose(operator(V).to(torch.float64), expected, atol=2e-6)


def test_slq_joint_entropy_lies_within_its_own_interval_on_20_seeds() -> None:
    """A 95% interval: on 20 seeds at least 17 cover the exact H(K_W∘K_M) (P(fewer | 95%) < 2%)."""
    C, d = 120, 16
    W, M = random_rows(C, d, seed=7)
    exact = information(gram(W.numpy()), gram(M.numpy()))
    h_joint = exact["h1"] + exact["h2"] - exact["mi"]
    covered = 0
    for seed in range(20):
        estimate = slq_joint_entropy(
            W,
            M,
            explicit=True,
            tol=1.0,
            budget_bytes=2**26,
            seed=seed,
            max_probes=32,
            steps=25,
            min_probes=32,
        )
        assert estimate.probes == 32 and estimate.half_width > 0
        covered += abs(estimate.estimate - h_joint) <= estimate.half_width
    assert covered >= 17, covered


@pytest.mark.parametrize("tile", [1, 7, 16, 64, 149, 150, 400])
def test_tiled_pairs_equal_dense_for_any_tile(tile: int) -> None:
    """Exact sums over all pairs, whatever the tile (7 and 16 do not divide C = 150)."""
    W, M = random_rows(150, 5, seed=11)
    assert tiled_angles(W, tile) == pytest.approx((equiangular(W), maxangle(W)), abs=1e-12)
    variances = torch.rand(150, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    equiangular_t, maxangle_t = tiled_angles(M, tile)
    assert equiangular_t == pytest.approx(equiangular(M), abs=1e-12)
    assert maxangle_t == pytest.approx(maxangle(M), abs=1e-12)
    sq = (M * M).sum(1)
    distances = (sq[:, None] + sq[None, :] - 2.0 * (M @ M.T)).clamp_min(0.0)
    dense_cdnv = (
        pairwise_upper(variances[:, None] + variances[None, :]) / (2.0 * pairwise_upper(distances))
    ).mean()
    assert tiled_cdnv(M, variances, tile) == pytest.approx(float(dense_cdnv), rel=1e-12)


def test_upper_tiles_cover_each_pair_once() -> None:
    C, tile = 11, 4
    seen = torch.zeros(C, C, dtype=torch.int64)
    for rows, cols, diagonal in upper_tiles(C, tile):
        block = torch.ones(rows.stop - rows.start, cols.stop - cols.start, dtype=torch.int64)
        seen[rows, cols] += block.triu(1) if diagonal else block
    assert torch.equal(seen, torch.ones(C, C, dtype=torch.int64).triu(1))


@pytest.mark.parametrize("C", [5, 12])
def test_simplex_etf_through_the_factored_route(C: int) -> None:
    """At an exact simplex ETF: H(K_W) = H(K_M) = log(C−1), HDR = 0 exactly, MIR = MIR_NC(C) within the
    SLQ interval (d² > C here, so the joint entropy is estimated)."""
    basis, _ = torch.linalg.qr(
        torch.randn(C + 2, C, dtype=torch.float64, generator=torch.Generator().manual_seed(C))
    )
    M = basis - basis.mean(1, keepdim=True) @ torch.ones(1, C, dtype=torch.float64) * 0  # (C+2, C)
    centred = torch.eye(C, dtype=torch.float64) - 1.0 / C  # rows: a simplex ETF in R^C
    M = centred @ basis.T  # (C, C+2)
    W = 0.3 * M
    routes = plan_routes(C, C + 2, 1, "factored")
    result = routed_information(W[None], M[None], routes)[0]
    assert result.metrics["h_head"] == pytest.approx(math.log(C - 1), abs=1e-12)
    assert result.metrics["h_means"] == pytest.approx(math.log(C - 1), abs=1e-12)
    assert result.metrics["hdr"] == pytest.approx(0.0, abs=1e-12)
    # the interval is statistical; the float32 matvec adds ~1e-7 of rounding
    assert abs(result.metrics["mir"] - mir_nc(C)) <= result.interval["mir"] + 1e-6


def test_auto_keeps_dense_for_small_c_and_never_dense_above_the_budget() -> None:
    assert plan_routes(100, 32).entropies == "dense"
    big = plan_routes(1_000_000, 8)
    assert (big.entropies, big.joint, big.pairwise) == ("factored", "kronecker", "tiled")
    vocab = plan_routes(50_257, 768)
    assert (vocab.joint, vocab.slq_matvec, vocab.pairwise) == ("slq", "factored", "tiled")
    assert plan_routes(DENSE_MAX_C + 1, 256).joint == "slq"
    assert plan_routes(5000, 256).slq_matvec == "explicit"  # 100 MB of float32 within 512 MB


@pytest.mark.parametrize("tile", [1, 7, 64, 150, 400])
def test_fused_means_pairs_equal_the_separate_kernels(tile: int) -> None:
    """One Gram tile for CDNV and the means' angles: the same values as the two kernels, a zero row
    (a class at the global mean) included, for tiles that do and do not divide C."""
    _, M = random_rows(150, 5, seed=13)
    M[17] = 0.0
    variances = torch.rand(150, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    cdnv, angles = tiled_means_pairs(M, variances, tile)
    assert cdnv == pytest.approx(tiled_cdnv(M, variances, tile), rel=1e-12)
    assert angles == pytest.approx(tiled_angles(M, tile), abs=1e-12)
