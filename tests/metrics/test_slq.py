"""Stochastic Lanczos quadrature (docs/PERFORMANCE.md) against dense float64 NumPy spectra."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nc_audit.metrics.slq import PROBE_BLOCK, ClassHadamardOperator, slq_entropy


def entropy_of(eigenvalues: np.ndarray) -> float:
    """−Σ λ log λ over the positive eigenvalues (float64)."""
    lam = eigenvalues[eigenvalues > 0]
    return float(-(lam * np.log(lam)).sum())


def random_psd(n: int, rank: int, seed: int) -> tuple[torch.Tensor, float]:
    """A trace-one PSD matrix with random eigenvectors (float32) and its exact entropy (float64)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.zeros(n)
    lam[:rank] = rng.uniform(0.1, 1.0, rank)
    lam /= lam.sum()
    A = (Q * lam) @ Q.T  # (n, n)
    return torch.tensor(A, dtype=torch.float32), entropy_of(lam)


@pytest.mark.parametrize("label_gram", ["head", "onehot"])
def test_class_hadamard_operator_equals_dense_product(label_gram: str) -> None:
    rng = np.random.default_rng(3)
    sizes, d, C = [7, 1, 12, 5], 6, 4
    blocks = [rng.standard_normal((n, d)) for n in sizes]
    blocks = [B / np.linalg.norm(B, axis=1, keepdims=True) for B in blocks]
    y = np.repeat(np.arange(C), sizes)  # (N,)
    U = rng.standard_normal((C, d))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    G = U @ U.T if label_gram == "head" else np.eye(C)  # (C, C)
    Z = np.concatenate(blocks)  # (N, d)
    N = Z.shape[0]
    V = rng.standard_normal((N, 3))
    expected = ((Z @ Z.T) * G[y][:, y]) @ V / N  # (N, 3) dense reference
    operator = ClassHadamardOperator(
        [torch.tensor(B) for B in blocks], torch.tensor(G) if label_gram == "head" else None, N
    )
    result = operator(torch.tensor(V, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(result, expected, atol=1e-6)


@pytest.mark.parametrize(("n", "rank"), [(400, 400), (400, 20), (30, 30)])
def test_diagonal_spectrum_measures_the_lanczos_bias_alone(n: int, rank: int) -> None:
    # With A diagonal every Rademacher probe gives tr f(A) exactly, so what is left is Lanczos + float32.
    rng = np.random.default_rng(n + rank)
    lam = np.zeros(n)
    lam[:rank] = rng.uniform(0.1, 1.0, rank)
    lam /= lam.sum()
    diag = torch.tensor(lam, dtype=torch.float32)
    result = slq_entropy(lambda V: diag[:, None] * V, n)
    assert result.probes == PROBE_BLOCK  # zero spread: the first block meets the target
    assert result.half_width < 1e-6
    assert (
        abs(result.estimate - entropy_of(lam)) < 1e-6
    )  # docs/PERFORMANCE.md: 1.8e-7 on a rank-deficient spectrum


@pytest.mark.parametrize(("n", "rank", "seed"), [(200, 200, 0), (200, 12, 1), (150, 60, 2)])
def test_interval_covers_the_exact_entropy(n: int, rank: int, seed: int) -> None:
    A, exact = random_psd(n, rank, seed)
    result = slq_entropy(lambda V: A @ V, n, tol=0.0, max_probes=128, seed=seed)
    assert result.probes == 128
    assert 0 < result.half_width < 0.1 * exact
    assert abs(result.estimate - exact) <= result.half_width


def test_probes_stop_at_the_target_or_the_cap_and_follow_the_seed() -> None:
    A, _ = random_psd(120, 120, 5)
    loose = slq_entropy(lambda V: A @ V, 120, tol=1.0, seed=1)
    capped = slq_entropy(lambda V: A @ V, 120, tol=0.0, max_probes=70, seed=1)
    again = slq_entropy(lambda V: A @ V, 120, tol=0.0, max_probes=70, seed=1)
    other = slq_entropy(lambda V: A @ V, 120, tol=0.0, max_probes=70, seed=2)
    assert loose.probes == PROBE_BLOCK
    assert capped.probes == 96  # whole blocks of 32 up to the cap
    assert again == capped
    assert other.estimate != capped.estimate
