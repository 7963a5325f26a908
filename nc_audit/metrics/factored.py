"""Class-level matrix entropies without a C×C matrix (docs/METRICS.md, "Routes for large class counts").

For unit rows Û (C, d) the Gram K = ÛÛᵀ (C×C) and ÛᵀÛ (d×d) share their non-zero eigenvalues, so
H(K) needs only the smaller one: exact, O(C·d²). The Hadamard product K_W∘K_M = ZZᵀ with Z's rows the
Kronecker products ŵ_c⊗m̂_c, so H(K_W∘K_M) is exact from the d²×d² Gram ZᵀZ, accumulated over row
blocks without forming Z whole (O(C·d⁴)). When d² > C that is no cheaper than C×C, and the joint entropy
is estimated by stochastic Lanczos quadrature (:mod:`nc_audit.metrics.slq`) with the factored matvec
(K_W∘K_M)v = rowsum((Ŵ(Ŵᵀ diag(v) M̂)) ∘ M̂), O(C·d²) per vector, or, when 4·C² bytes fit the budget,
with K_W∘K_M held once in float32. Every entropy is of K/C, as on the dense route.
"""

from __future__ import annotations

import math

import torch

from nc_audit.core.linalg import entropy_from_eigenvalues, unit_rows
from nc_audit.metrics.eigen_backend import batched_eigvalsh
from nc_audit.metrics.slq import (
    LANCZOS_STEPS,
    PROBE_BLOCK,
    Z_95,
    Matvec,
    SLQEstimate,
    lanczos_quadrature,
)

#: SLQ stops when its 95% half-width is at most this fraction of min(H(K_W), H(K_M)) (so MIR's
#: half-width is at most this, MI's relative one this / MIR), or at SLQ_MAX_PROBES probes.
SLQ_RTOL = 2e-3
#: Absolute floor of the SLQ target half-width (nats).
SLQ_ATOL = 1e-4
#: Most SLQ probes per joint entropy.
SLQ_MAX_PROBES = 512
#: Probes of the first SLQ block (their spread sizes the next block).
SLQ_MIN_PROBES = 8
#: A probe's Lanczos stops once its quadrature moves by less than this fraction of the SLQ target.
QUADRATURE_SHARE = 0.1
#: Elements of the factored matvec's (C, k·d) float32 temporaries per column group.
FACTORED_GROUP_ELEMENTS = 2**25
#: Rows per block when forming K_W∘K_M or ZᵀZ by blocks (bounded further by the budget).
MAX_BLOCK_ROWS = 4096


def smaller_gram_entropy(X: torch.Tensor) -> float:
    """H(K) of the cosine Gram K of the rows of X (C, d), from the smaller of ÛᵀÛ (d×d) and ÛÛᵀ (C×C).

    Exact: both have the same non-zero eigenvalues; the entropy is of K/C as on the dense route."""
    U = unit_rows(X)  # (C, d) float64; zero rows stay zero
    C, d = U.shape
    G = U.T @ U if d <= C else U @ U.T  # (min(C, d), min(C, d))
    return float(entropy_from_eigenvalues(batched_eigvalsh(G), float(C)))


def kronecker_gram(U: torch.Tensor, V: torch.Tensor, budget_bytes: int) -> torch.Tensor:
    """ZᵀZ = Σ_c (u_c⊗v_c)(u_c⊗v_c)ᵀ for rows u_c of U (C, p), v_c of V (C, q), by row blocks: no Z whole.

    Returns (p·q, p·q) float64; each block of Z (rows, p·q) fits a quarter of ``budget_bytes``."""
    C, p = U.shape
    q = V.shape[1]
    rows = max(1, min(MAX_BLOCK_ROWS, budget_bytes // (4 * 8 * p * q)))
    G = torch.zeros(p * q, p * q, dtype=torch.float64, device=U.device)  # (pq, pq)
    for start in range(0, C, rows):
        Ub, Vb = U[start : start + rows], V[start : start + rows]  # (b, p), (b, q)
        Z = (Ub[:, :, None] * Vb[:, None, :]).reshape(Ub.shape[0], p * q)  # (b, pq)
        G.addmm_(Z.T, Z)
    return G


def kronecker_joint_entropy(W: torch.Tensor, M: torch.Tensor, budget_bytes: int) -> float:
    """H(K_W∘K_M) exactly from the d²×d² Gram of the Kronecker rows ŵ_c⊗m̂_c. W, M: (C, d)."""
    U, V = unit_rows(W), unit_rows(M)  # (C, d), (C, d)
    G = kronecker_gram(U, V, budget_bytes)  # (d², d²)
    return float(entropy_from_eigenvalues(batched_eigvalsh(G), float(U.shape[0])))


class FactoredHadamard:
    """v ↦ (K_W∘K_M)v / C by the factored matvec, O(C·d²) per vector, no C×C matrix; float32.

    Column k: X = Ŵᵀ diag(v_k) M̂ (d×d), then rowsum((Ŵ X) ∘ M̂). Memory: two (C, d) temporaries."""

    def __init__(self, W: torch.Tensor, M: torch.Tensor) -> None:
        self.U = unit_rows(W).to(torch.float32)  # (C, d)
        self.V = unit_rows(M).to(torch.float32)  # (C, d)
        self.C = int(self.U.shape[0])

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        """(C, b) -> (C, b), a group of columns per pair of GEMMs (each group's (C, k·d) temporaries
        within FACTORED_GROUP_ELEMENTS)."""
        C, d = self.U.shape
        X = X.to(torch.float32)
        out = torch.empty(X.shape, dtype=torch.float32, device=X.device)  # (C, b)
        group = max(1, min(X.shape[1], FACTORED_GROUP_ELEMENTS // max(1, C * d)))
        for start in range(0, X.shape[1], group):
            Xg = X[:, start : start + group]  # (C, k)
            k = Xg.shape[1]
            scaled = (Xg[:, :, None] * self.V[:, None, :]).reshape(C, k * d)  # (C, k·d) rows x_cj m̂_c
            inner = self.U.T @ scaled  # (d, k·d): column j's block is Ŵᵀ diag(x_j) M̂
            rows = (self.U @ inner).reshape(C, k, d)  # (C, k, d)
            out[:, start : start + k] = torch.einsum("ckd,cd->ck", rows, self.V)
        return out / self.C


class ExplicitHadamard:
    """v ↦ (K_W∘K_M)v / C with K_W∘K_M held once in float32 (4·C² bytes), formed by row blocks."""

    def __init__(self, W: torch.Tensor, M: torch.Tensor, budget_bytes: int) -> None:
        U = unit_rows(W).to(torch.float32)  # (C, d)
        V = unit_rows(M).to(torch.float32)  # (C, d)
        C = int(U.shape[0])
        self.K = torch.empty(C, C, dtype=torch.float32, device=U.device)  # (C, C)
        rows = max(1, min(MAX_BLOCK_ROWS, budget_bytes // (8 * 4 * C)))
        for start in range(0, C, rows):
            stop = min(start + rows, C)
            torch.mul(U[start:stop] @ U.T, V[start:stop] @ V.T, out=self.K[start:stop])
        self.K /= C

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        """(C, b) -> (C, b)."""
        return self.K @ X.to(torch.float32)


def t_quantile_95(dof: int) -> float:
    """Two-sided 95% quantile of Student's t with ``dof`` ≥ 1 degrees of freedom (Cornish–Fisher
    expansion about the normal quantile: within 0.3% of the exact value from 4 degrees of freedom on,
    up to 3% low below that, where SLQ_MIN_PROBES keeps the default run; the normal one for large ``dof``)."""
    z = Z_95
    nu = float(max(dof, 1))
    return (
        z
        + (z**3 + z) / (4 * nu)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * nu**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * nu**3)
    )


def next_block(count: int, spread: float, tol: float, *, min_probes: int, max_probes: int) -> int:
    """Probes to add after ``count`` whose residuals have standard deviation ``spread``: as many as the
    target ``tol`` on the 95% half-width predicts (normal quantile), at least ``min_probes``, at most
    PROBE_BLOCK and the ``max_probes`` left."""
    if tol <= 0 or not math.isfinite(spread):  # no target, or one probe: no spread to size from
        return max(0, min(PROBE_BLOCK, max_probes - count))
    needed = math.ceil((Z_95 * spread / tol) ** 2) - count
    return max(0, min(max(needed, min_probes), PROBE_BLOCK, max_probes - count))


def slq_entropy_controlled(
    matvec: Matvec,
    n: int,
    trace: float,
    *,
    tol: float,
    max_probes: int = SLQ_MAX_PROBES,
    steps: int = LANCZOS_STEPS,
    min_probes: int = SLQ_MIN_PROBES,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> SLQEstimate:
    """tr(−A log A) of an n×n PSD operator by SLQ with a control variate (docs/PERFORMANCE.md).

    Each Rademacher probe v gives q = vᵀ f(A) v (Lanczos quadrature, :func:`lanczos_quadrature`) and
    l = vᵀ A v (one more matvec), whose mean is the known ``trace`` = tr A. The estimate is the mean of
    q − β(l − tr A), β the regression coefficient of q on l over the probes so far: f(A) ≈ a·I + β·A to
    first order, so this removes the first-order part of the Hutchinson variance (the bulk when the
    off-diagonal of A is small). The half-width is t·s/√p of these residuals (t: Student's 95% quantile
    with p − 2 degrees of freedom, the mean and β being fitted). The first ``min_probes`` probes give
    the spread; then a block of the probes the target predicts (:func:`next_block`) until the
    half-width is at most ``tol`` or ``max_probes`` are used. Each probe's Lanczos stops once its
    quadrature moves by less than QUADRATURE_SHARE·``tol`` (at most ``steps``): the steps follow the
    error target too."""
    generator = torch.Generator().manual_seed(seed)
    quadratures: list[torch.Tensor] = []
    linears: list[torch.Tensor] = []
    estimate, half_width, count, used = 0.0, float("inf"), 0, 0
    block = max(1, min(min_probes, max_probes))
    atol = QUADRATURE_SHARE * tol if tol > 0 else None
    while block > 0:
        signs = torch.randint(0, 2, (n, block), generator=generator, dtype=torch.int8)  # (n, block)
        V = (2 * signs - 1).to(device=device, dtype=torch.float32)  # (n, block)
        quadrature = lanczos_quadrature(matvec, V, steps, atol)
        used = max(used, quadrature.steps)
        quadratures.append(quadrature.values.cpu())
        linears.append((V.to(torch.float64) * matvec(V).to(torch.float64)).sum(0).cpu())  # (block,)
        q, l = torch.cat(quadratures), torch.cat(linears)  # (count,)
        count = int(q.numel())
        centred = l - l.mean()
        spread = float((centred * centred).sum())
        beta = float((centred * (q - q.mean())).sum()) / spread if spread > 0 else 0.0
        residuals = q - beta * (l - trace)  # (count,)
        estimate = float(residuals.mean())
        deviation = float(residuals.std()) if count > 1 else float("inf")
        half_width = t_quantile_95(count - 2) * deviation / count**0.5
        if half_width <= tol:
            break
        block = next_block(count, deviation, tol, min_probes=min_probes, max_probes=max_probes)
    return SLQEstimate(estimate, half_width, count, used)


def slq_joint_entropy(
    W: torch.Tensor,
    M: torch.Tensor,
    *,
    explicit: bool,
    tol: float,
    budget_bytes: int,
    seed: int = 0,
    max_probes: int = SLQ_MAX_PROBES,
    steps: int = LANCZOS_STEPS,
    min_probes: int = SLQ_MIN_PROBES,
) -> SLQEstimate:
    """H(K_W∘K_M) by stochastic Lanczos quadrature to a 95% half-width ``tol`` (nats), or ``max_probes``.

    ``explicit``: the matvec reads K_W∘K_M held in float32 (4·C² bytes); else the factored matvec."""
    operator = ExplicitHadamard(W, M, budget_bytes) if explicit else FactoredHadamard(W, M)
    U, V = unit_rows(W), unit_rows(M)
    C = int(W.shape[0])
    trace = float(((U * U).sum(1) * (V * V).sum(1)).sum()) / C  # tr (K_W∘K_M)/C, exact
    return slq_entropy_controlled(
        operator,
        C,
        trace,
        tol=tol,
        max_probes=max_probes,
        steps=steps,
        min_probes=min_probes,
        seed=seed,
        device=W.device,
    )
