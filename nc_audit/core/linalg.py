"""Small float64 linear-algebra kernels shared by the metrics and the losses.

Every function here takes torch tensors, works in float64 and is batched over leading dimensions, so
the same code runs on CPU and, unchanged, on CUDA.
"""

from __future__ import annotations

import math

import torch

#: Relative cut-off for the pseudo-inverse and for "numerically zero" eigenvalues (METRICS.md, nc1).
PINV_RTOL = 1e-10


def unit_rows(X: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Rows of X divided by their Euclidean norm (a zero row stays zero). X: (..., n, d) -> (..., n, d)."""
    X = X.to(torch.float64)
    norms = torch.linalg.vector_norm(X, dim=-1, keepdim=True)  # (..., n, 1)
    return X / norms.clamp_min(eps if eps > 0 else torch.finfo(torch.float64).tiny)


def gram(X: torch.Tensor) -> torch.Tensor:
    """Gram of the normalised rows, G_ij = <x_i/|x_i|, x_j/|x_j|> (METRICS.md). (..., n, d) -> (..., n, n)."""
    U = unit_rows(X)  # (..., n, d)
    return U @ U.transpose(-1, -2)  # (..., n, n)


def entropy_from_eigenvalues(eigenvalues: torch.Tensor, trace: float | torch.Tensor) -> torch.Tensor:
    """Matrix entropy −Σ λ_k log λ_k of K/trace from the eigenvalues of K. (..., n) -> (...).

    Negative round-off eigenvalues are clamped to 0 (0·log 0 = 0 via torch.special.entr).
    """
    lam = eigenvalues.to(torch.float64) / trace  # (..., n)
    return torch.special.entr(lam.clamp_min(0.0)).sum(-1)


def matrix_entropy(K: torch.Tensor) -> torch.Tensor:
    """H(K) = −tr((K/n) log(K/n)) for a PSD K with unit diagonal, batched. (..., n, n) -> (...).

    Song et al. (2024), arXiv 2406.03999, eq. (1). One batched eigvalsh over all leading dimensions.
    """
    n = K.shape[-1]
    eigenvalues = torch.linalg.eigvalsh(K.to(torch.float64))  # (..., n)
    return entropy_from_eigenvalues(eigenvalues, float(n))


def pinv_psd(A: torch.Tensor, max_rank: int | None = None, rtol: float = PINV_RTOL) -> torch.Tensor:
    """Moore–Penrose pseudo-inverse of a symmetric PSD matrix from its eigenpairs above rtol·λ_max.

    At most ``max_rank`` eigenpairs are kept (C−1 for Σ_B), the largest ones. (d, d) -> (d, d).
    """
    A = A.to(torch.float64)
    A = 0.5 * (A + A.transpose(-1, -2))
    eigenvalues, eigenvectors = torch.linalg.eigh(A)  # (d,), (d, d), ascending
    top = eigenvalues[-1].clamp_min(0.0)
    keep = eigenvalues > rtol * top
    if max_rank is not None and int(keep.sum()) > max_rank:
        keep = torch.zeros_like(keep)
        keep[-max_rank:] = True
    V = eigenvectors[:, keep]  # (d, r)
    return (V / eigenvalues[keep]) @ V.T  # (d, d)


def pairwise_upper(A: torch.Tensor) -> torch.Tensor:
    """Entries of A above the diagonal (pairs c < c'), flattened. (n, n) -> (n(n−1)/2,)."""
    n = A.shape[-1]
    rows, cols = torch.triu_indices(n, n, offset=1, device=A.device)
    return A[..., rows, cols]


def simplex_etf_gram(C: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The simplex-ETF Gram C/(C−1)·I − 1/(C−1)·11ᵀ, the value of K_W and K_M at Neural Collapse. (C, C)."""
    return (C * torch.eye(C, dtype=dtype) - torch.ones(C, C, dtype=dtype)) / (C - 1)


def xlogx(x: float) -> float:
    """x·log x with 0·log 0 = 0."""
    return 0.0 if x == 0 else x * math.log(x)
