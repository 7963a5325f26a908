"""ShiftedSums: the first pass's fused, allocation-free accumulator of ClassStats.

Rows are accumulated about shifts s_c fixed before they arrive:

    n_c,   T_c = Σ_{y_i=c} (h_i − s_c),   Q_c = Σ_{y_i=c} ‖h_i − s_c‖²,   [S = Σ_i (h_i − s_{y_i})(h_i − s_{y_i})ᵀ]

and at the end μ_c = s_c + T_c/n_c, Σ_{y_i=c} ‖h_i − μ_c‖² = Q_c − ‖T_c‖²/n_c (and S − Σ_c T_c T_cᵀ/n_c).
All plain sums: no per-block Chan merge, no fresh temporaries (the work buffers are reused, which on CPU
spares the page faults of every large allocation), and they add across workers and ranks (:meth:`ShiftedSums.combine`).

Two modes. By default one shift g for every class, the mean of the first rows seen: a block then costs a
conversion to float64, one subtraction of g, one row norm and the index-adds. The final subtraction
cancels the share ‖μ_c − g‖²/(‖μ_c − g‖² + σ_c²) of Q_c, i.e. loses about log10(1 + ‖μ_c − g‖²/σ_c²)
digits, a few for ordinary features. :meth:`ill_conditioned` says when that costs more than
CONDITION_LIMIT, e.g. for nearly collapsed classes, and the caller then runs the pass again with
``shifts`` = the class means just measured: each class is centred on its own mean (one more gather per
block, so that mode costs somewhat more), and nothing cancels.

Rows with NaN/Inf are recognised from their squared norm (non-finite iff a component is; float16/32
values cannot overflow it in float64) and only counted, on the device: the pass fails with the count at
its end, so the sums they spoil are never used, and no block reads anything back to the host to skip
them (:mod:`nc_audit.engine.blocks`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch

from nc_audit.core.class_stats import ClassStats
from nc_audit.core.devices import TensorPlacement
from nc_audit.engine.blocks import Blockwise, add_class_counts, block_rows, count_nonfinite
from nc_audit.engine.state import Accumulator, Reduction

#: Largest ‖μ_c − s_c‖² / σ_c² (share of Q_c that cancels) accepted: above it, fewer than ~12 of float64's
#: ~16 digits of σ_c² would survive.
CONDITION_LIMIT = 1e4


class ShiftedSums(Blockwise, Accumulator):
    """Streaming n_c, T_c, Q_c (and S) about fixed shifts; see the module docstring.

    ``shifts`` (C, d): centre each class on its own row (per-class mode); None: one shift for all
    classes, the mean of the first block's finite rows.

    ``nonfinite`` counts the rows holding NaN/Inf as a 0-d tensor on the device (read it once, after
    the pass, as :attr:`nonfinite_rows`).

    In the merge protocol (:mod:`nc_audit.engine.state`) the sums about the shifts merge together, by
    :meth:`combine`; the count of non-finite rows is a plain sum."""

    reductions: ClassVar[Mapping[str, Reduction]] = {
        "counts": "custom",
        "shifted": "custom",
        "shifts": "custom",
        "deviation_sums": "custom",
        "squares": "custom",
        "scatter": "custom",
        "nonfinite": "sum",
    }

    def __init__(
        self,
        num_classes: int,
        feature_dim: int,
        device: torch.device,
        with_scatter: bool = True,
        shifts: torch.Tensor | None = None,
    ) -> None:
        C, d = num_classes, feature_dim
        kw: TensorPlacement = {"dtype": torch.float64, "device": device}
        self.device = device
        per_class = shifts is not None
        self.rows_per_block = block_rows(d, device)
        self.counts = torch.zeros(C, **kw)  # (C,) n_c
        self.shifts = shifts.to(**kw).clone() if shifts is not None else torch.zeros(C, d, **kw)  # (C, d)
        self.shifted = torch.full((C,), per_class, dtype=torch.bool, device=device)  # (C,) s_c fixed
        self.deviation_sums = torch.zeros(C, d, **kw)  # (C, d) T_c
        self.squares = torch.zeros(C, **kw)  # (C,) Q_c
        self.scatter = torch.zeros(d, d, **kw) if with_scatter else None  # (d, d) S
        self.nonfinite = torch.zeros((), dtype=torch.int64, device=device)  # rows with NaN/Inf
        self._global_shift: torch.Tensor | None = None  # (d,) g, once fixed (single-shift mode)
        self._gathered = (
            torch.empty(self.rows_per_block, d, **kw) if per_class else None
        )  # per-class mode only
        self._deviations = torch.empty(self.rows_per_block, d, **kw)  # work buffers, reused by every block
        self._row_squares = torch.empty(self.rows_per_block, **kw)

    def _update_block(self, H: torch.Tensor, y: torch.Tensor) -> None:
        n = int(y.shape[0])
        D = self._deviations[:n].copy_(H)  # (n, d) float64
        if self._gathered is not None:
            D.sub_(torch.index_select(self.shifts, 0, y, out=self._gathered[:n]))  # h_i − s_{y_i}
        else:
            D.sub_(self._shift_from(D))  # h_i − g
        # ‖·‖ then squared: one pass instead of two (a product then a sum), within 2 ulps per row
        q = torch.linalg.vector_norm(D, 2, 1, out=self._row_squares[:n]).square_()  # (n,) ‖h_i − s_{y_i}‖²
        self.nonfinite += count_nonfinite(q)  # NaN/Inf rows (or float64 squares that overflowed)
        add_class_counts(self.counts, y)
        self.deviation_sums.index_add_(0, y, D)
        self.squares.index_add_(0, y, q)
        if self.scatter is not None:
            self.scatter.addmm_(D.T, D)

    def _shift_from(self, H: torch.Tensor) -> torch.Tensor:
        """g (d,): the mean of the first block's finite rows, fixed from then on (zeros when it has none:
        such a pass fails anyway). Masked by ``where``, not by indexing, so nothing is read back."""
        if self._global_shift is None:
            finite = torch.isfinite(H).all(1, keepdim=True)  # (n, 1)
            self._global_shift = torch.where(finite, H, 0.0).sum(0) / finite.sum().clamp_min(1)  # (d,)
            self.shifts[:] = self._global_shift
            self.shifted[:] = True
        return self._global_shift

    def ill_conditioned(self, limit: float = CONDITION_LIMIT) -> bool:
        """Whether, for some class, ‖μ_c − s_c‖² exceeds ``limit``·σ_c² (see the module docstring):
        then re-run the pass with ``shifts`` = the class means."""
        n = self.counts.clamp_min(1.0)  # (C,)
        offset = (self.deviation_sums * self.deviation_sums).sum(1) / n  # (C,) n_c ‖μ_c − s_c‖²
        centred = self.squares - offset  # (C,) n_c σ_c², up to rounding
        return bool(((self.counts > 0) & (offset > limit * centred)).any())

    def combine(self, other: ShiftedSums) -> None:
        """Add the sums of another accumulator (another worker's or rank's rows), first moved onto this
        one's shifts: with δ_c = s'_c − s_c, h − s_c = (h − s'_c) + δ_c, so

            T_c += T'_c + n'_c δ_c,   Q_c += Q'_c + 2 δ_c·T'_c + n'_c ‖δ_c‖²,
            S += S' + T'ᵀΔ + ΔᵀT' + Δᵀ diag(n') Δ.

        Every term is on the scale of the deviations (the shifts of two workers differ by a block's
        sampling error), so merging loses nothing that one worker would have kept; a merge of
        ClassStats (sums of raw rows) would lose ~ε·‖μ_c‖ to cancellation instead."""
        adopt = other.shifted & ~self.shifted  # (C,) classes only the other has seen: take its shift
        self.shifts[adopt] = other.shifts[adopt]
        self.shifted |= adopt
        delta = torch.where(other.shifted[:, None], other.shifts - self.shifts, 0.0)  # (C, d)
        T, n = other.deviation_sums, other.counts  # (C, d), (C,)
        if self.scatter is not None and other.scatter is not None:
            cross = T.T @ delta  # (d, d)
            self.scatter += other.scatter + cross + cross.T + delta.T @ (n[:, None] * delta)
        self.squares += other.squares + 2.0 * (delta * T).sum(1) + n * (delta * delta).sum(1)
        self.deviation_sums += T + n[:, None] * delta
        self.counts += n

    def class_stats(self) -> ClassStats:
        """The accumulated statistics as an ordinary ClassStats."""
        n = self.counts.clamp_min(1.0)[:, None]  # (C, 1)
        T = self.deviation_sums  # (C, d)
        scatter = None
        if self.scatter is not None:
            scatter = self.scatter - (T / n).T @ T  # (d, d)
            scatter = (scatter + scatter.T) / 2
        return ClassStats(
            counts=self.counts.clone(),
            sums=T + self.counts[:, None] * self.shifts,
            scatter=scatter,
            sq_dev=(self.squares - (T * T).sum(1) / n[:, 0]).clamp_min(0.0),
        )

    @property
    def nonfinite_rows(self) -> int:
        """Rows holding NaN or ±Inf seen so far (reads the device counter: call after the pass)."""
        return int(self.nonfinite)

    @property
    def num_classes(self) -> int:
        return int(self.counts.shape[0])
