"""Stochastic Lanczos quadrature (SLQ) for tr(f(A)), f(x) = −x log x, of a PSD operator given as a matvec.

docs/PERFORMANCE.md, "Stochastic Lanczos quadrature, when it is the only way"; the method is Ubaru, Chen &
Saad (2017), "Fast estimation of tr(f(A)) via stochastic Lanczos quadrature", SIAM J. Matrix Anal. Appl.
38(4). Used only for the joint entropy H(K1∘K2) of sample-level matrix information, where neither a dual
nor a Khatri–Rao eigensolve fits; H(K1) and H(K2) stay exact.

For a Rademacher probe v, vᵀ f(A) v = ‖v‖² e₁ᵀ f(T) e₁ ≈ ‖v‖² Σ_k τ_k² f(θ_k), with T the m×m Lanczos
tridiagonal matrix started from v/‖v‖, θ_k its eigenvalues (Ritz values) and τ_k the first components of
its eigenvectors; the mean over probes estimates tr f(A) (Hutchinson), with a 95% interval from their spread.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

#: Lanczos steps per probe (docs/PERFORMANCE.md).
LANCZOS_STEPS = 40
#: Probes per Lanczos block; probes are added a block at a time (docs/PERFORMANCE.md).
PROBE_BLOCK = 32
#: Most probes per estimate (docs/PERFORMANCE.md, stochastic Lanczos quadrature).
MAX_PROBES = 1024
#: Ritz values below this fraction of the largest are set to 0 (docs/PERFORMANCE.md: removes a float32 bias).
RITZ_RTOL = 1e-6
#: A Lanczos residual below this fraction of the operator's scale means the Krylov space is exhausted.
BREAKDOWN_RTOL = 1e-5
#: With a convergence target, Lanczos checks its quadratures every CHECK_EVERY steps from MIN_STEPS on.
MIN_STEPS, CHECK_EVERY = 8, 4
#: Two-sided 95% normal quantile.
Z_95 = 1.959963984540054

Matvec = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SLQEstimate:
    """An SLQ estimate of tr f(A), the half-width of its 95% interval, the probes it used and the most
    Lanczos steps a probe took (None: the fixed LANCZOS_STEPS)."""

    estimate: float
    half_width: float
    probes: int
    steps: int | None = None


def lanczos_entropy_quadrature(matvec: Matvec, V: torch.Tensor, steps: int = LANCZOS_STEPS) -> torch.Tensor:
    """vᵀ f(A) v for each column v of V by `steps` Lanczos steps with full reorthogonalisation.

    docs/PERFORMANCE.md: float32 vectors, the tridiagonal eigenproblem in float64, Ritz values below
    RITZ_RTOL·max set to 0. Columns run independently (one batched matvec per step); a column whose
    Krylov space is exhausted stops there (its later coefficients are 0). V: (n, b) -> (b,) float64.
    """
    return lanczos_quadrature(matvec, V, steps).values


@dataclass(frozen=True)
class Quadrature:
    """Per-column quadratures vᵀ f(A) v (b,) float64 and the Lanczos steps they took."""

    values: torch.Tensor
    steps: int


def gauss_quadrature(alpha: torch.Tensor, beta: torch.Tensor, norms_sq: torch.Tensor) -> torch.Tensor:
    """‖v‖² e₁ᵀ f(T) e₁ per column from the Lanczos coefficients: alpha (k, b) the diagonal of T, beta
    (k−1, b) its off-diagonal, norms_sq (b,) the probes' squared norms. Returns (b,) float64."""
    T = torch.diag_embed(alpha.T) + torch.diag_embed(beta.T, 1) + torch.diag_embed(beta.T, -1)  # (b, k, k)
    theta: torch.Tensor
    U: torch.Tensor
    theta, U = torch.linalg.eigh(T)  # (b, k), (b, k, k)
    theta = torch.where(theta < RITZ_RTOL * theta.amax(-1, keepdim=True), 0.0, theta)  # (b, k)
    tau_sq = U[:, 0, :] ** 2  # (b, k) Gauss quadrature weights
    entropies: torch.Tensor = torch.special.entr(theta)  # (b, k)
    return norms_sq * (tau_sq * entropies).sum(-1)


def lanczos_quadrature(
    matvec: Matvec, V: torch.Tensor, steps: int = LANCZOS_STEPS, atol: float | None = None
) -> Quadrature:
    """:func:`lanczos_entropy_quadrature` with a convergence stop: with ``atol``, every CHECK_EVERY
    steps from MIN_STEPS on the quadratures are formed from the tridiagonal matrix so far (a (b, k, k)
    eigh, negligible beside a matvec), and Lanczos stops once no column moved by more than ``atol``
    since the previous check (at most ``steps``). Without ``atol``: exactly ``steps`` steps."""
    n, b = V.shape
    m = min(steps, n)
    norms_sq = (V.to(torch.float64) ** 2).sum(0)  # (b,)
    # Column-major bases (b, m+1, n): each column's basis is one strided matrix, so reorthogonalisation
    # is two batched GEMMs without copies (an (m+1, n, b) einsum would copy the bases every step).
    Q = V.new_zeros(b, m + 1, n, dtype=torch.float32)
    Q[:, 0] = (V.to(torch.float64) / norms_sq.sqrt()).T.to(torch.float32)
    alpha = torch.zeros(m, b, dtype=torch.float64, device=V.device)  # (m, b) diagonal of T
    beta = torch.zeros(m, b, dtype=torch.float64, device=V.device)  # (m, b) beta[j] couples j, j+1
    scale = torch.zeros(b, dtype=torch.float64, device=V.device)  # (b,) running estimate of ‖A‖
    previous: torch.Tensor | None = None
    for j in range(m):
        R = matvec(Q[:, j].T).T.to(torch.float32).contiguous()  # (b, n)
        alpha[j] = (Q[:, j].to(torch.float64) * R.to(torch.float64)).sum(-1)
        if atol is not None and j + 1 >= MIN_STEPS and (j + 1) % CHECK_EVERY == 0 and j + 1 < m:
            current = gauss_quadrature(alpha[: j + 1], beta[:j], norms_sq)  # (b,)
            if previous is not None and float((current - previous).abs().max()) <= atol:
                return Quadrature(current, j + 1)
            previous = current
        basis = Q[:, : j + 1]  # (b, j+1, n)
        for _ in range(2):  # classical Gram–Schmidt twice: orthogonal to float32 round-off
            R -= torch.bmm(basis.transpose(1, 2), torch.bmm(basis, R[:, :, None]))[..., 0]
        if j == m - 1:
            break
        # float64 norm: a float32 reduction lost 5e-6 here, a 70× larger bias on rank-deficient spectra
        residual = torch.linalg.vector_norm(R.to(torch.float64), dim=-1)  # (b,)
        scale = torch.maximum(scale, torch.maximum(alpha[j].abs(), residual))
        alive = residual > BREAKDOWN_RTOL * scale  # (b,)
        beta[j] = torch.where(alive, residual, 0.0)
        safe = residual.to(torch.float32).clamp_min(torch.finfo(torch.float32).tiny)  # (b,)
        Q[:, j + 1] = torch.where(alive[:, None], R / safe[:, None], 0.0)  # (b, n)
    return Quadrature(gauss_quadrature(alpha, beta[: m - 1], norms_sq), m)


def slq_entropy(
    matvec: Matvec,
    n: int,
    *,
    tol: float = 1e-3,
    max_probes: int = MAX_PROBES,
    steps: int = LANCZOS_STEPS,
    block: int = PROBE_BLOCK,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> SLQEstimate:
    """tr(f(A)) = −tr(A log A) of an n×n PSD operator by stochastic Lanczos quadrature.

    docs/PERFORMANCE.md: Rademacher probes in blocks of `block` until the 95% interval half-width
    1.96·s/√p is at most `tol` (absolute, in nats), at most `max_probes` (rounded up to whole blocks);
    probes come from a torch.Generator seeded with `seed` on the CPU, so the result does not depend on
    the device. For the matrix entropy H(K) pass the matvec of K/n. `matvec` maps (n, b) float32 to
    (n, b) on `device`. Memory: (steps+1)·n·block float32 Lanczos vectors.
    """
    generator = torch.Generator().manual_seed(seed)
    samples: list[torch.Tensor] = []
    count = 0
    half_width = math.inf
    while count < max(max_probes, 1):
        signs = torch.randint(0, 2, (n, block), generator=generator, dtype=torch.int8)  # (n, block)
        V = (2 * signs - 1).to(device=device, dtype=torch.float32)  # (n, block)
        samples.append(lanczos_entropy_quadrature(matvec, V, steps).cpu())
        values = torch.cat(samples)  # (count,)
        count = values.numel()
        half_width = Z_95 * float(values.std()) / math.sqrt(count)
        if half_width <= tol:
            break
    return SLQEstimate(float(values.mean()), half_width, count)


class ClassHadamardOperator:
    """v ↦ (K_Z∘K_Y) v / N for K_Z = ẐẐᵀ and K_Y[i, j] = G[y_i, y_j], without any N×N matrix.

    docs/PERFORMANCE.md's structured matvec (K1∘K2)v = diag(Z1 (Z1ᵀ diag(v) Z2) Z2ᵀ) with Z2 the labels'
    rows of a factor of G: M_c = Σ_{y_i=c} ẑ_i v_i (per-class sums), then row i reads
    ẑ_iᵀ Σ_e G[y_i, e] M_e. Cost 4·N·d·b + C²·d·b per block of b vectors. G = None means the one-hot
    label Gram (G = I). The rows must be grouped by class: `blocks[c]` holds class c's rows (n_c, d) and
    vectors index the rows in that order.
    """

    def __init__(self, blocks: Sequence[torch.Tensor], label_gram: torch.Tensor | None, num_samples: int):
        self.blocks = [B.to(torch.float32) for B in blocks]  # each (n_c, d)
        self.sizes = [B.shape[0] for B in self.blocks]
        self.label_gram = None if label_gram is None else label_gram.to(torch.float32)  # (C, C)
        self.num_samples = num_samples

    def __call__(self, V: torch.Tensor) -> torch.Tensor:
        """(K_Z∘K_Y)V / N for V: (N, b) -> (N, b), float32."""
        parts = V.split(self.sizes)  # per class (n_c, b)
        M = torch.stack([Z.T @ Vc for Z, Vc in zip(self.blocks, parts, strict=True)])  # (C, d, b)
        if self.label_gram is not None:
            M = (self.label_gram @ M.flatten(1)).reshape(M.shape)  # (C, d, b)
        rows = [Z @ Mc for Z, Mc in zip(self.blocks, M, strict=True)]  # each (n_c, b)
        return torch.cat(rows) / self.num_samples  # (N, b)
