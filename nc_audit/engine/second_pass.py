"""SecondPass: one worker's share of the second streaming pass, fused into one GEMM per block.

The second pass needs, per row, the logits W h + b (NC4's classifier), the order of ‖h − μ_c‖² over the
candidate classes (nearest class mean) and the projections (h − μ_y)·v_k onto Σ_B's eigenvectors (NC1).
All three are linear in h, so with the rows first centred on the global mean, h̃ = h − μ_G (converted to
float64 in a reused buffer), one GEMM h̃ [W; M̄; V]ᵀ gives them all:

    W h + b = W h̃ + (b + W μ_G),   ‖h − μ_c‖² = ‖h̃‖² − 2 h̃·m̄_c + ‖m̄_c‖²  (m̄_c = μ_c − μ_G),
    (h − μ_y)·v = h̃·v − m̄_y·v.

Centring on μ_G first keeps every term on the scale of the class means around it, so the subtraction in
the last line loses no more than √(between/within) ulps. One GEMM instead of three thin ones is
the point of the fusion (benchmarks/RESULTS.md times the pass).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import ClassVar

import torch

from nc_audit.engine.accumulators import DecisionCounter, WithinProjection
from nc_audit.engine.blocks import Blockwise, block_rows, count_nonfinite
from nc_audit.engine.sample_stats import SampleLevelStats
from nc_audit.engine.state import Accumulator, Reduction


class SecondPass(Blockwise, Accumulator):
    """Counts NC4 decisions, NC1 projections and (optionally) the sample-level scatters of blocks;
    replicas for other workers start from zero sums and merge back through the merge protocol
    (:func:`nc_audit.engine.state.merge`: the parts are its children)."""

    reductions: ClassVar[Mapping[str, Reduction]] = {"nonfinite": "sum"}
    children = ("counter", "projection", "sample_stats")

    def __init__(
        self,
        counter: DecisionCounter,
        global_mean: torch.Tensor,
        sample_stats: SampleLevelStats | None = None,
        projection: WithinProjection | None = None,
    ) -> None:
        self.counter, self.sample_stats, self.projection = counter, sample_stats, projection
        self.device = counter.class_means.device
        mu = global_mean.to(self.device, torch.float64)  # (d,)
        W = counter.head_weight.to(torch.float64)  # (C, d)
        M = counter.class_means - mu  # (C', d) m̄ of the candidate classes
        parts = [W, M]
        self._bias = W @ mu + (counter.head_bias if counter.head_bias is not None else 0.0)  # (C,)
        self._mean_sq = (M * M).sum(1)  # (C',)
        self._slices = (slice(0, W.shape[0]), slice(W.shape[0], W.shape[0] + M.shape[0]))
        if projection is not None:
            V = projection.basis.to(self.device, torch.float64)  # (r, d)
            self._mean_projections = (projection.class_means.to(self.device) - mu) @ V.T  # (C_head, r)
            parts.append(V)
        self._stacked_t = torch.cat(parts).T.contiguous()  # (d, C + C' + r)
        self._global_mean = mu
        self._same_centre = sample_stats is not None and torch.equal(sample_stats.global_mean, mu)
        self.rows_per_block = block_rows(int(mu.shape[0]), self.device)
        self._centred = torch.empty(
            self.rows_per_block, int(mu.shape[0]), dtype=torch.float64, device=self.device
        )
        self._products = torch.empty(
            self.rows_per_block, self._stacked_t.shape[1], dtype=torch.float64, device=self.device
        )
        self.nonfinite = torch.zeros((), dtype=torch.int64, device=self.device)  # rows with NaN/Inf

    @property
    def nonfinite_rows(self) -> int:
        """Rows holding NaN or ±Inf (reads the device counter: call after the pass)."""
        return int(self.nonfinite)

    def replica(self) -> SecondPass:
        """A copy with its own sums and buffers; call before any update."""
        return copy.deepcopy(self)

    def _update_block(self, H: torch.Tensor, y: torch.Tensor) -> None:
        n = int(y.shape[0])
        centred = self._centred[:n].copy_(H).sub_(self._global_mean)  # (n, d) h̃, float64
        # A row sum is finite iff every entry is. NaN/Inf rows are only counted, on the device: the pass
        # fails with the count, so the decisions and sums they spoil are never used.
        self.nonfinite += count_nonfinite(centred.sum(1))
        P = torch.mm(centred, self._stacked_t, out=self._products[:n])  # (n, C + C' + r)
        head, means = self._slices
        self.counter.count(P[:, head] + self._bias, self._mean_sq - 2.0 * P[:, means], y)
        if self.projection is not None:
            self.projection.add_projected(P[:, means.stop :] - self._mean_projections[y])
        if self.sample_stats is not None:
            if self._same_centre:  # h − μ_G is already in hand: not computed twice
                self.sample_stats.update_centred(centred, y)
            else:  # K_Z centred on another split's mean (measure --split test); rows already validated
                self.sample_stats.update_centred(H.to(torch.float64) - self.sample_stats.global_mean, y)
