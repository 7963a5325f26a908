"""Neural Collapse metrics NC1–NC4 (docs/METRICS.md), pure functions of ClassStats and the head.

Papyan, Han & Donoho (2020), "Prevalence of neural collapse during the terminal phase of deep learning
training", PNAS 117(40); CDNV from Galanti, György & Hutter (2022), ICLR. All arithmetic is float64.
Conventions (named in every report): the global mean is sample-weighted, Σ_B weights classes equally,
standard deviations are population ones, NC4 includes the head's bias.
"""

from __future__ import annotations

import torch

from nc_audit.core.class_stats import ClassStats
from nc_audit.core.linalg import PINV_RTOL, pairwise_upper
from nc_audit.metrics.routes import ClassRoutes
from nc_audit.metrics.tiled import tiled_angles, tiled_means_pairs


def centred_means(stats: ClassStats) -> torch.Tensor:
    """M̄: rows m̄_c = μ_c − μ_G with the sample-weighted global mean. (C, d)"""
    return stats.class_means - stats.global_mean[None, :]


#: Class means closer than this, relative to their size, coincide (rounding, not spread): the metrics of
#: MEANS_DEPENDENT are then undefined.
COINCIDE_RTOL = 1e-13
#: Metrics that divide by (or normalise) the spread of the class means: undefined when the means coincide.
MEANS_DEPENDENT = (
    "nc1", "nc1_cdnv", "nc2_equinorm_means", "nc2_equiangular_means", "nc2_maxangle_means", "nc3", "nc4",
    "h_means", "mi", "mir", "hdr",
)  # fmt: skip


def means_coincide(stats: ClassStats) -> bool:
    """Whether the class means coincide up to rounding: zero between-class spread (constant or all-zero
    features), which leaves NC1 and every metric of MEANS_DEPENDENT undefined. ``stats`` holds the
    present classes."""
    spread = torch.linalg.vector_norm(centred_means(stats), dim=1).max()
    size = torch.linalg.vector_norm(stats.class_means, dim=1).max()
    return bool(spread <= COINCIDE_RTOL * size)


def nc1(stats: ClassStats) -> float:
    """Within-class variability relative to between-class spread, tr(Σ_W Σ_B^†)/C.

    Papyan, Han & Donoho (2020), PNAS 117(40).
    """
    return float(nc1_batched(centred_means(stats)[None], stats.within_cov[None])[0])


def pinv_eigenpairs(M: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The eigenpairs of Σ_B = M̄ᵀM̄/C that its pseudo-inverse keeps (docs/METRICS.md, nc1), batched.

    From the thin SVD of M̄ (λ_k = s_k²/C, eigenvectors v_k) without squaring M̄; eigenvalues above
    1e-10·λ_max and at most C−1 of them are kept; the others get λ = inf (so 1/λ = 0).
    M: (B, C, d) -> eigenvalues (B, r), eigenvectors (B, r, d).
    """
    C = M.shape[-2]
    _, s, Vh = torch.linalg.svd(M, full_matrices=False)  # (B, r), (B, r, d); s descending
    eigenvalues = s * s / C  # (B, r) eigenvalues of Σ_B
    rank_index = torch.arange(eigenvalues.shape[-1], device=M.device)  # (r,)
    keep = (eigenvalues > PINV_RTOL * eigenvalues[:, :1]) & (rank_index < C - 1)  # (B, r)
    return torch.where(keep, eigenvalues, torch.full_like(eigenvalues, float("inf"))), Vh


def nc1_batched(M: torch.Tensor, Sigma_W: torch.Tensor) -> torch.Tensor:
    """NC1 = tr(Σ_W Σ_B^†)/C for a batch of checkpoints, with no Python loop over them.

    M: (B, C, d) centred class means; Sigma_W: (B, d, d). Returns (B,).
    """
    eigenvalues, Vh = pinv_eigenpairs(M)  # (B, r), (B, r, d)
    # (B, r) v_kᵀ Σ_W v_k, ≥ 0 for a PSD Σ_W (rounding of a zero scatter can leave -1e-48)
    projected = torch.einsum("brd,bde,bre->br", Vh, Sigma_W, Vh).clamp_min(0.0)
    values = (projected / eigenvalues).sum(-1) / M.shape[-2]  # (B,)
    # Σ_B = 0 (no eigenvalue kept): NC1 is undefined, not a "perfect collapse" of 0
    return torch.where(torch.isfinite(eigenvalues).any(-1), values, torch.full_like(values, float("nan")))


def nc1_from_projections(
    squared: torch.Tensor, eigenvalues: torch.Tensor, num_samples: int, num_classes: int
) -> float:
    """NC1 = Σ_k (v_kᵀ Σ_W v_k)/λ_k / C from the streamed squared projections Σ_i (v_k·(h_i − μ_{y_i}))²
    onto the kept eigenvectors of Σ_B (:func:`pinv_eigenpairs`), with N = ``num_samples``. (r,), (r,)."""
    if not bool(torch.isfinite(eigenvalues).any()):  # Σ_B = 0: undefined, not 0
        return float("nan")
    return float((squared / num_samples / eigenvalues).sum() / num_classes)


def nc1_cdnv(stats: ClassStats) -> float:
    """Class-distance normalised variance, mean over pairs c<c' of (σ_c² + σ_c'²) / (2‖μ_c − μ_c'‖²).

    Galanti, György & Hutter (2022), "On the role of neural collapse in transfer learning", ICLR.
    """
    M = centred_means(stats)  # (C, d) centring first keeps the distance formula well conditioned
    sq_norms = (M * M).sum(1)  # (C,)
    distances = (sq_norms[:, None] + sq_norms[None, :] - 2.0 * (M @ M.T)).clamp_min(0.0)  # (C, C)
    variances = stats.class_variances  # (C,)
    numerators = variances[:, None] + variances[None, :]  # (C, C)
    return float((pairwise_upper(numerators) / (2.0 * pairwise_upper(distances))).mean())


def _cosines(X: torch.Tensor) -> torch.Tensor:
    """Cosines of all pairs c<c' of the rows of X. (C, d) -> (C(C−1)/2,)"""
    U = X / torch.linalg.vector_norm(X, dim=1, keepdim=True)  # (C, d)
    return pairwise_upper(U @ U.T)


def equinorm(X: torch.Tensor) -> float:
    """NC2 equinorm: std_c ‖x_c‖ / mean_c ‖x_c‖ (population std). Papyan et al. (2020), Fig. 2."""
    norms = torch.linalg.vector_norm(X.to(torch.float64), dim=1)  # (C,)
    return float(norms.std(correction=0) / norms.mean())


def equiangular(X: torch.Tensor) -> float:
    """NC2 equiangularity: std over pairs c<c' of cos(x_c, x_c'). Papyan et al. (2020), Fig. 3."""
    return float(_cosines(X.to(torch.float64)).std(correction=0))


def maxangle(X: torch.Tensor) -> float:
    """NC2 maximal angle: mean over pairs of |cos(x_c, x_c') + 1/(C−1)|. Papyan et al. (2020), Fig. 4."""
    C = X.shape[0]
    return float((_cosines(X.to(torch.float64)) + 1.0 / (C - 1)).abs().mean())


def nc3(head_weight: torch.Tensor, stats: ClassStats) -> float:
    """Self-duality ‖W/‖W‖_F − M̄/‖M̄‖_F‖_F². Papyan et al. (2020), Fig. 5."""
    W = head_weight.to(torch.float64)  # (C, d)
    M = centred_means(stats)  # (C, d)
    return float(
        torch.linalg.matrix_norm(W / torch.linalg.matrix_norm(W) - M / torch.linalg.matrix_norm(M)) ** 2
    )


def collapse_metrics(
    stats: ClassStats,
    head_weight: torch.Tensor,
    nc1_value: float | None = None,
    routes: ClassRoutes | None = None,
) -> dict[str, float]:
    """NC1–NC3 and their variants (every key of docs/METRICS.md except nc4, which needs a second pass).

    ``nc1_value`` passes in an NC1 already computed in a batch (see :func:`nc1_batched`); ``routes``
    (:func:`nc_audit.metrics.routes.plan_routes`) picks dense C×C pairs or the tiled kernels
    (:mod:`nc_audit.metrics.tiled`, same values without a C×C matrix); default: dense."""
    W = head_weight.to(torch.float64)  # (C, d)
    M = centred_means(stats)  # (C, d)
    values = {
        "nc1": nc1(stats) if nc1_value is None else nc1_value,
        "nc2_equinorm_means": equinorm(M),
        "nc2_equinorm_head": equinorm(W),
        "nc3": nc3(W, stats),
    }
    if routes is not None and routes.pairwise == "tiled" and routes.tile is not None:
        values["nc1_cdnv"], angles_means = tiled_means_pairs(M, stats.class_variances, routes.tile)
        angles_head = tiled_angles(W, routes.tile)
    else:
        values["nc1_cdnv"] = nc1_cdnv(stats)
        angles_means, angles_head = (equiangular(M), maxangle(M)), (equiangular(W), maxangle(W))
    values["nc2_equiangular_means"], values["nc2_maxangle_means"] = angles_means
    values["nc2_equiangular_head"], values["nc2_maxangle_head"] = angles_head
    order = (
        "nc1", "nc1_cdnv", "nc2_equinorm_means", "nc2_equinorm_head", "nc2_equiangular_means",
        "nc2_equiangular_head", "nc2_maxangle_means", "nc2_maxangle_head", "nc3",
    )  # fmt: skip
    return {key: values[key] for key in order}
