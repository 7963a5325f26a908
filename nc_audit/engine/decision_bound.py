"""A rigorous bound on a float32 decision score's error, and the top-2 reductions of tiled scores.

The second pass decides argmax_c s_c(x), s_c = x·a_c + β_c (the head's logits; the nearest class mean as
argmax of x·m̄_c − ‖m̄_c‖²/2), for x = h − μ_G computed in float64. The float32 route computes
ŝ_c = fl32(fl32(x̂·â_c) + β̂_c) with x̂, â, β̂ the float32 roundings (u = 2⁻²⁴). Componentwise,
|x̂_j â_j − x_j a_j| ≤ (2u + u²)|x_j a_j|; any summation order (BLAS blocking, FMA) adds at most
γ_d Σ|x̂_j â_j| with γ_d = d·u/(1 − d·u) (Higham, Accuracy and Stability, §3.1); Σ|x_j a_j| ≤ ‖x‖‖a‖
(Cauchy–Schwarz); the bias adds u|β| (rounding β) and u|x̂·â + β̂| (the addition). Altogether

    |ŝ_c − s_c| ≤ K·‖x‖·‖a_c‖ + 3u·|β_c| + Λ,   K = (d + 3)·u / (1 − (d + 3)·u) (rounded up by 1 %),

where Λ = 2·2⁻¹²⁶·(√d·(‖x‖ + ‖a‖) + 3d + 4) covers underflow (flush-to-zero included: every rounded
input, product and partial sum may lose up to 2⁻¹²⁶ absolutely). The float64 scores obey the same
bound with u = 2⁻⁵³ and 2⁻¹⁰²². So when the float32 margin between the best and the second best score
exceeds 2·(E₃₂ + E₆₄) (with the largest ‖a_c‖ and |β_c| of the class set), the exact scores, and the
float64 scores too, have the same strict argmax: the float32 decision IS the float64 decision.
Rows below that margin (ties included) are re-decided in float64 (:mod:`nc_audit.engine.second_pass`).
A non-finite best score (overflow) is never trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

U32, TINY32 = 2.0**-24, 2.0**-126
U64, TINY64 = 2.0**-53, 2.0**-1022
#: Over-estimate of the bound's own float64 evaluation error (the margin and the threshold are rounded).
SAFETY = 1.0 + 2.0**-20


def _gamma(d: int, unit: float) -> float:
    """(d + 3)·u / (1 − (d + 3)·u), rounded up by 1 % (γ_d plus the rounding of inputs and bias)."""
    k = (d + 3) * unit
    if k >= 0.5:
        return math.inf  # no useful bound: every row is re-decided
    return 1.01 * k / (1.0 - k)


@dataclass(frozen=True)
class MarginBound:
    """Threshold(‖x‖) = slope·‖x‖ + offset: a float32 margin above it certifies the decision."""

    slope: float
    offset: float

    @classmethod
    def of(cls, feature_dim: int, max_norm: float, max_bias: float) -> MarginBound:
        """The bound for scores x·a_c + β_c over vectors a_c with ‖a_c‖ ≤ max_norm, |β_c| ≤ max_bias."""
        d, root = feature_dim, math.sqrt(feature_dim)
        slope = offset = 0.0
        for unit, tiny in ((U32, TINY32), (U64, TINY64)):
            slope += _gamma(d, unit) * max_norm + 2.0 * tiny * root
            offset += 3.0 * unit * max_bias + 2.0 * tiny * (root * max_norm + 3 * d + 4)
        # the margin must exceed the error of both scores (best and second best): a factor 2
        return cls(2.0 * SAFETY * slope, 2.0 * SAFETY * offset)

    def certified(self, best: torch.Tensor, second: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
        """(n,) bool: rows whose float32 decision equals the exact (and float64) argmax. best, second:
        (n,) float32 top-2 scores; norms: (n,) float64 ‖x‖."""
        margin = best.to(torch.float64) - second.to(torch.float64)
        threshold = norms * self.slope + self.offset
        return torch.isfinite(best) & (margin > threshold)


def top2(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(best, second best, index of the best) of each row of ``scores`` (n, w), a scratch buffer that is
    overwritten. A tie makes second == best (margin 0: never certified)."""
    best, index = scores.max(1)
    if scores.shape[1] == 1:
        return best, torch.full_like(best, -math.inf), index
    scores.scatter_(1, index[:, None], -math.inf)
    return best, scores.amax(1), index


def merge_top2(
    running: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
    tile: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    offset: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Running (best, second, index) over class tiles in order, ``tile``'s indices shifted by ``offset``;
    on equal bests the earlier class is kept (argmax's first index)."""
    best, second, index = tile
    index = index + offset
    if running is None:
        return best, second, index
    old_best, old_second, old_index = running
    take = best > old_best
    return (
        torch.maximum(old_best, best),
        torch.maximum(torch.minimum(old_best, best), torch.maximum(old_second, second)),
        torch.where(take, index, old_index),
    )


def merge_argmax(
    running: tuple[torch.Tensor, torch.Tensor] | None, tile: tuple[torch.Tensor, torch.Tensor], offset: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Running (best, index) over class tiles in order (float64 route); earlier class kept on ties."""
    best, index = tile
    index = index + offset
    if running is None:
        return best, index
    old_best, old_index = running
    take = best > old_best
    return torch.where(take, best, old_best), torch.where(take, index, old_index)
