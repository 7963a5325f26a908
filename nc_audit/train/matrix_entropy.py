"""Differentiable matrix entropy, matrix mutual information, MIR and HDR (float64), batched.

Song et al. (2024), arXiv 2406.03999; docs/METRICS.md, "Matrix information metrics". The building blocks
of the fine-tuning losses (nc_audit.train.losses) and of the MIR/HDR regulariser forms
(nc_audit.train.regularizer). The code runs unchanged on CPU and CUDA.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from nc_audit.core.errors import InputError

#: Floor for the normalised eigenvalues λ = eig(K)/n inside −Σ λ log λ: below it a term counts as 0 and
#: carries no gradient (d(−λ log λ)/dλ = −log λ − 1 is infinite at λ = 0).
EIG_FLOOR = 1e-12

#: Floor for the denominators min(H1, H2) and max(H1, H2) of MIR and HDR (a batch of one class has H = 0).
ENTROPY_FLOOR = 1e-12


def entropy_of_eigenvalues(
    eigenvalues: torch.Tensor, size: torch.Tensor | float, *, eps_eig: float = EIG_FLOOR
) -> torch.Tensor:
    """Differentiable −Σ_k λ_k log λ_k with λ = eigenvalues / size, batched. (..., m) -> (...).

    docs/METRICS.md, matrix entropy: λ are the eigenvalues of K/n, terms with λ_k = 0 are 0. Terms with
    λ_k <= eps_eig (padding, round-off, rank deficiency) count as 0 and get a zero gradient, so the
    gradient stays finite; the value changes by at most eps_eig·log(1/eps_eig) per such term.
    ``size`` is n, a float or a tensor broadcastable to (..., 1).
    """
    lam = eigenvalues.to(torch.float64) / size  # (..., m)
    above = lam > eps_eig  # (..., m)
    # Clamping before entr keeps the masked-out branch's gradient finite (0·∞ would be NaN in where).
    terms = torch.special.entr(lam.clamp_min(eps_eig))  # (..., m)
    return torch.where(above, terms, torch.zeros_like(terms)).sum(-1)


def differentiable_matrix_entropy(K: torch.Tensor, *, eps_eig: float = EIG_FLOOR) -> torch.Tensor:
    """H(K) = −tr((K/n) log(K/n)) for a PSD K with unit diagonal, differentiable, batched. (..., n, n) -> (...).

    Song et al. (2024), arXiv 2406.03999, eq. (1); docs/METRICS.md. One batched eigvalsh in float64; its
    backward needs only the eigenvectors, so repeated eigenvalues give finite gradients.
    """
    n = K.shape[-1]
    eigenvalues = torch.linalg.eigvalsh(K.to(torch.float64))  # (..., n)
    return entropy_of_eigenvalues(eigenvalues, float(n), eps_eig=eps_eig)


def check_matrix_shapes(features: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, name: str) -> None:
    """Raise InputError unless features (B, d), labels (B,) in 0..C−1 and rows (C, d) fit together."""
    if features.ndim != 2:
        raise InputError(f"features must be a (B, d) matrix, got shape {tuple(features.shape)}")
    if labels.ndim != 1 or labels.shape[0] != features.shape[0]:
        raise InputError(
            f"labels must have shape ({features.shape[0]},) to match features {tuple(features.shape)}, "
            f"got {tuple(labels.shape)}"
        )
    if rows.ndim != 2 or rows.shape[1] != features.shape[1]:
        raise InputError(
            f"{name} must have shape (C, {features.shape[1]}) to match features {tuple(features.shape)}, "
            f"got {tuple(rows.shape)}"
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= rows.shape[0]):
        raise InputError(
            f"labels must lie in 0..{rows.shape[0] - 1} (the rows of {name}), "
            f"got values in {int(labels.min())}..{int(labels.max())}"
        )


class MatrixInformation(NamedTuple):
    """Matrix mutual information and its two ratios for a pair of Gram matrices (tensors, batched)."""

    mi: torch.Tensor
    mir: torch.Tensor
    hdr: torch.Tensor


def matrix_information(
    K1: torch.Tensor, K2: torch.Tensor, *, eps_eig: float = EIG_FLOOR
) -> MatrixInformation:
    """Differentiable MI, MIR and HDR of two PSD matrices with unit diagonal. (..., n, n) x2 -> (...) x3.

    Song et al. (2024), arXiv 2406.03999; docs/METRICS.md:
    MI = H(K1) + H(K2) − H(K1 ∘ K2), MIR = MI / min(H1, H2), HDR = |H1 − H2| / max(H1, H2).
    The three entropies come from one batched eigvalsh. MIR and HDR are undefined when an entropy is
    0; here the denominators are floored at ENTROPY_FLOOR (then MI = 0 too), so a loss stays finite.
    """
    if K1.shape != K2.shape or K1.ndim < 2 or K1.shape[-1] != K1.shape[-2]:
        raise InputError(
            f"matrix_information needs two square matrices of the same shape, "
            f"got {tuple(K1.shape)} and {tuple(K2.shape)}"
        )
    K1 = K1.to(torch.float64)  # (..., n, n)
    K2 = K2.to(torch.float64)  # (..., n, n)
    H1, H2, H12 = differentiable_matrix_entropy(torch.stack((K1, K2, K1 * K2)), eps_eig=eps_eig)  # (...) x3
    return information_from_entropies(H1, H2, H12)


def information_from_entropies(H1: torch.Tensor, H2: torch.Tensor, H12: torch.Tensor) -> MatrixInformation:
    """MI = H1 + H2 − H12, MIR and HDR from the three entropies (denominators floored at ENTROPY_FLOOR)."""
    mi = H1 + H2 - H12
    mir = mi / torch.minimum(H1, H2).clamp_min(ENTROPY_FLOOR)
    hdr = (H1 - H2).abs() / torch.maximum(H1, H2).clamp_min(ENTROPY_FLOOR)
    return MatrixInformation(mi=mi, mir=mir, hdr=hdr)
