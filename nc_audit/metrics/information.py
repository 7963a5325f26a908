"""Class-level matrix information (docs/METRICS.md): H(K_W), H(K_M), MI, MIR, HDR — batched.

Song, Tan, Zou, Chen, Ma & Huang (2024), "Unveiling the Dynamics of Information Interplay in Supervised
Learning", ICML, arXiv 2406.03999. K_W is the Gram of the head rows, K_M the Gram of the centred class
means; both are C×C, so on the dense route many checkpoints (or layers) are stacked into one batched
eigvalsh. For large C the factored routes (:mod:`nc_audit.metrics.routes`, :mod:`nc_audit.metrics.factored`)
give the same entropies from d×d and d²×d² Grams, or H(K_W∘K_M) by SLQ with a 95% interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from nc_audit.core.linalg import entropy_from_eigenvalues, gram
from nc_audit.metrics.eigen_backend import batched_eigvalsh
from nc_audit.metrics.factored import (
    SLQ_ATOL,
    SLQ_RTOL,
    kronecker_joint_entropy,
    slq_joint_entropy,
    smaller_gram_entropy,
)
from nc_audit.metrics.routes import ClassRoutes, dense_routes
from nc_audit.metrics.slq import LANCZOS_STEPS

#: Entropies below this count as zero when they would divide MIR or HDR.
ZERO_ENTROPY = 1e-12

INFORMATION_KEYS = ("h_head", "h_means", "mi", "mir", "hdr")


def ratio_metrics(h1: float, h2: float, h_joint: float) -> dict[str, float | None]:
    """MI, MIR and HDR from H(K1), H(K2) and H(K1∘K2); an undefined ratio is None (never a number)."""
    mi = h1 + h2 - h_joint
    smaller, larger = min(h1, h2), max(h1, h2)
    return {
        "mi": mi,
        "mir": mi / smaller if smaller > ZERO_ENTROPY else None,
        "hdr": abs(h1 - h2) / larger if larger > ZERO_ENTROPY else None,
    }


def batched_entropies(K1: torch.Tensor, K2: torch.Tensor) -> torch.Tensor:
    """H(K1), H(K2), H(K1∘K2) for a batch of unit-diagonal Grams, in ONE batched eigvalsh.

    K1, K2: (B, n, n) float64 -> (3, B) entropies.
    """
    B, n, _ = K1.shape
    stacked = torch.cat([K1, K2, K1 * K2], dim=0)  # (3B, n, n)
    eigenvalues = batched_eigvalsh(stacked)  # (3B, n); on CUDA the faster measured backend
    return entropy_from_eigenvalues(eigenvalues, float(n)).reshape(3, B)


def class_level_information(
    head_weights: torch.Tensor, centred_means: torch.Tensor, routes: ClassRoutes | None = None
) -> list[dict[str, float | None]]:
    """h_head, h_means, mi, mir, hdr for a batch of checkpoints.

    head_weights: (B, C, d) rows w_c; centred_means: (B, C, d) rows m̄_c = μ_c − μ_G.
    Returns one dict per checkpoint, in order; ``routes`` default: the dense route.
    """
    return [result.metrics for result in routed_information(head_weights, centred_means, routes)]


@dataclass(frozen=True)
class InformationResult:
    """The class-level information metrics of one checkpoint, with the 95% half-widths of the estimated
    ones (MI and MIR on the SLQ route; empty when exact) and the SLQ probes and Lanczos steps."""

    metrics: dict[str, float | None]
    interval: dict[str, float] = field(default_factory=dict)
    probes: int | None = None
    steps: int | None = None


def _dense_information(head_weights: torch.Tensor, centred_means: torch.Tensor) -> list[InformationResult]:
    K_W = gram(head_weights)  # (B, C, C)
    K_M = gram(centred_means)  # (B, C, C)
    entropies = batched_entropies(K_W, K_M).cpu()  # (3, B)
    return [
        InformationResult({"h_head": h1, "h_means": h2, **ratio_metrics(h1, h2, h_joint)})
        for h1, h2, h_joint in entropies.T.tolist()
    ]


def _factored_information(W: torch.Tensor, M: torch.Tensor, routes: ClassRoutes) -> InformationResult:
    """One checkpoint by the factored routes: W, M (C, d)."""
    h1, h2 = smaller_gram_entropy(W), smaller_gram_entropy(M)
    if routes.joint == "kronecker":
        h_joint = kronecker_joint_entropy(W, M, routes.budget_bytes)
        return InformationResult({"h_head": h1, "h_means": h2, **ratio_metrics(h1, h2, h_joint)})
    if routes.joint == "dense":
        return _dense_information(W[None], M[None])[0]
    tol = max(SLQ_ATOL, SLQ_RTOL * min(h1, h2))
    estimate = slq_joint_entropy(
        W, M, explicit=routes.slq_matvec == "explicit", tol=tol, budget_bytes=routes.budget_bytes
    )
    metrics = {"h_head": h1, "h_means": h2, **ratio_metrics(h1, h2, estimate.estimate)}
    interval = {"mi": estimate.half_width}
    if metrics["mir"] is not None:
        interval["mir"] = estimate.half_width / min(h1, h2)
    return InformationResult(metrics, interval, estimate.probes, estimate.steps or LANCZOS_STEPS)


def routed_information(
    head_weights: torch.Tensor, centred_means: torch.Tensor, routes: ClassRoutes | None = None
) -> list[InformationResult]:
    """:func:`class_level_information` with the route of ``routes`` (default: dense) and the SLQ error
    bars. The dense route stacks every checkpoint into one batched eigvalsh; the factored ones go one
    checkpoint at a time (d×d, d²×d² or SLQ, never C×C)."""
    B = head_weights.shape[0]
    routes = routes or dense_routes()
    if routes.entropies == "dense":
        return _dense_information(head_weights, centred_means)
    return [_factored_information(head_weights[b], centred_means[b], routes) for b in range(B)]


def mir_at_collapse(C: int) -> float | None:
    """MIR_NC(C) = 1/(C−1) + (C−2)·log(C−2) / ((C−1)·log(C−1)); None for C = 2 (undefined)."""
    if C < 3:
        return None
    return 1.0 / (C - 1) + (C - 2) * math.log(C - 2) / ((C - 1) * math.log(C - 1))


def nc_targets(C: int) -> dict[str, float | None]:
    """The value of every class-level metric at Neural Collapse (docs/METRICS.md, 'Values at Neural Collapse')."""
    log_c1 = math.log(C - 1)
    xlog_c2 = (C - 2) * math.log(C - 2) if C > 2 else 0.0
    targets: dict[str, float | None] = {
        key: 0.0
        for key in (
            "nc1",
            "nc1_cdnv",
            "nc2_equinorm_means",
            "nc2_equinorm_head",
            "nc2_equiangular_means",
            "nc2_equiangular_head",
            "nc2_maxangle_means",
            "nc2_maxangle_head",
            "nc3",
            "nc4",
        )
    }
    targets.update(
        {
            "h_head": log_c1,
            "h_means": log_c1,
            "mi": (log_c1 + xlog_c2) / (C - 1),
            "mir": mir_at_collapse(C),
            "hdr": 0.0 if C > 2 else None,
        }
    )
    return targets


def sample_level_targets(C: int) -> dict[str, float | None]:
    """Sample-level values at Neural Collapse with BALANCED classes (docs/METRICS.md): K_Z and K_Y are the
    class-level ETF Grams expanded by blocks, so they share the class-level values; with the one-hot label
    Gram, H(K_Y1) = H(K_Z∘K_Y1) = log C, so MI = H(K_Z) = log(C−1)."""
    level = nc_targets(C)
    return {
        "h_samples": level["h_head"],
        "h_labels": level["h_head"],
        "mi_samples": level["mi"],
        "mir_samples": level["mir"],
        "hdr_samples": level["hdr"],
        "mi_samples_onehot": math.log(C - 1),
    }
