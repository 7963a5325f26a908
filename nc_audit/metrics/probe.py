"""The least-squares linear probe of a layer, from its class statistics alone (float64).

W_probe = argmin_W ‖X̃ W − Ỹ‖²_F with Y ∈ {0,1}^{N×C} one-hot and the tilde centring by the global
mean (X̃ = X − 1μ_Gᵀ, Ỹ = Y − 1pᵀ, p_c = n_c/N), i.e. the ordinary least-squares fit of Y on X with an
intercept. Its normal equations (X̃ᵀX̃) W = X̃ᵀỸ need only sufficient statistics the streaming first pass
already holds (:class:`nc_audit.core.class_stats.ClassStats`), nothing per sample:

    X̃ᵀX̃ = S_W + Σ_c n_c m̄_c m̄_cᵀ        (within-class scatter + between-class scatter, m̄_c = μ_c − μ_G)
    (X̃ᵀỸ)_{:,c} = n_c m̄_c
    b = p − W_probeᵀ μ_G                (the intercept)

Singular X̃ᵀX̃ (a layer wider than its rank: more width than samples, or features confined to a
subspace such as the C − 1 dimensions of collapsed class means) gets a ridge λ = RIDGE·λ_max(X̃ᵀX̃):
the solution then lies in the data's span, within a relative 1e-10 of the minimum-norm least-squares
solution there. The probe's rows w_c (C, d) stand in for a head in the matrix-information metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nc_audit.core.class_stats import ClassStats

#: The ridge, relative to the largest eigenvalue of X̃ᵀX̃, added when X̃ᵀX̃ is singular.
RIDGE = 1e-10
#: X̃ᵀX̃ counts as singular when its smallest eigenvalue is at most this fraction of its largest.
SINGULAR = 1e-12


@dataclass(frozen=True)
class Probe:
    """A fitted probe: ``weight`` (C, d) (rows w_c, as a head's), ``bias`` (C,), and the ridge λ added
    (None when X̃ᵀX̃ was regular and the normal equations were solved as they are)."""

    weight: torch.Tensor
    bias: torch.Tensor
    ridge: float | None


def least_squares_probe(stats: ClassStats) -> Probe:
    """The probe of the module docstring from a layer's ClassStats (which must hold the scatter)."""
    if stats.scatter is None:
        raise ValueError("the probe needs statistics accumulated with the within-class scatter")
    counts = stats.counts  # (C,)
    N = counts.sum()
    mu_G = stats.global_mean  # (d,)
    M_bar = torch.where((counts > 0)[:, None], stats.class_means - mu_G, 0.0)  # (C, d) m̄_c
    XtX = stats.scatter + M_bar.T @ (counts[:, None] * M_bar)  # (d, d) X̃ᵀX̃
    XtX = (XtX + XtX.T) / 2
    XtY = (counts[:, None] * M_bar).T  # (d, C) X̃ᵀỸ
    eigenvalues = torch.linalg.eigvalsh(XtX)  # ascending
    largest = float(eigenvalues[-1]) if eigenvalues.numel() else 0.0
    ridge = None
    if largest <= 0.0 or float(eigenvalues[0]) <= SINGULAR * largest:
        ridge = RIDGE * largest if largest > 0.0 else 1.0
        XtX = XtX + ridge * torch.eye(XtX.shape[0], dtype=XtX.dtype, device=XtX.device)
    W = torch.linalg.solve(XtX, XtY)  # (d, C)
    bias = counts / N - W.T @ mu_G  # (C,)
    return Probe(weight=W.T.contiguous(), bias=bias, ridge=ridge)
