"""Small float64 linear-algebra kernels shared by the metrics and the losses.

Every function here takes torch tensors, works in float64 and is batched over leading dimensions, so
the same code runs on CPU and, unchanged, on CUDA.
"""

from __future__ import annotations

import torch

#: Relative cut-off for the pseudo-inverse and for "numerically zero" eigenvalues (docs/METRICS.md, nc1).
PINV_RTOL = 1e-10


def unit_rows(X: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Rows of X divided by their Euclidean norm (a zero row stays zero). X: (..., n, d) -> (..., n, d)."""
    X = X.to(torch.float64)
    norms: torch.Tensor = torch.linalg.vector_norm(X, dim=-1, keepdim=True)  # (..., n, 1)
    return X / norms.clamp_min(eps if eps > 0 else torch.finfo(torch.float64).tiny)


def gram(X: torch.Tensor) -> torch.Tensor:
    """Gram of the normalised rows, G_ij = <x_i/|x_i|, x_j/|x_j|> (docs/METRICS.md). (..., n, d) -> (..., n, n)."""
    U = unit_rows(X)  # (..., n, d)
    return U @ U.transpose(-1, -2)  # (..., n, n)


def entropy_from_eigenvalues(eigenvalues: torch.Tensor, trace: float | torch.Tensor) -> torch.Tensor:
    """Matrix entropy −Σ λ_k log λ_k of K/trace from the eigenvalues of K. (..., n) -> (...).

    Negative round-off eigenvalues are clamped to 0 (0·log 0 = 0 via torch.special.entr).
    """
    lam = eigenvalues.to(torch.float64) / trace  # (..., n)
    terms: torch.Tensor = torch.special.entr(lam.clamp_min(0.0))  # (..., n)
    return terms.sum(-1)


def pairwise_upper(A: torch.Tensor) -> torch.Tensor:
    """Entries of A above the diagonal (pairs c < c'), flattened. (n, n) -> (n(n−1)/2,)."""
    n = A.shape[-1]
    rows, cols = torch.triu_indices(n, n, offset=1, device=A.device)
    return A[..., rows, cols]
