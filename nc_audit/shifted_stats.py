"""ShiftedSums: the first pass's fused, allocation-free accumulator of ClassStats.

Each class c gets a fixed shift s_c, the mean of its rows in the first block that holds any. After that a
block costs one gather, one conversion to float64, one subtraction, one row norm and the index-adds of plain
sums:

    n_c,   T_c = Σ_{y_i=c} (h_i − s_c),   Q_c = Σ_{y_i=c} ‖h_i − s_c‖²,   [S = Σ_i (h_i − s_{y_i})(h_i − s_{y_i})ᵀ]

and at the end μ_c = s_c + T_c/n_c, Σ_{y_i=c} ‖h_i − μ_c‖² = Q_c − ‖T_c‖²/n_c (and S − Σ_c T_c T_cᵀ/n_c).
Because s_c lies within a block's sampling error of μ_c, ‖T_c‖²/n_c is a small fraction of Q_c and the
subtraction loses no meaningful precision; no per-block Chan merge, no fresh temporaries (the work buffers
are reused, which on CPU spares the page faults of every large allocation). Plain sums also add across
workers and shards; the result is an ordinary ClassStats, merged exactly across ranks as before.

Rows with NaN/Inf are recognised from their squared norm (non-finite iff a component is; float16/32
values cannot overflow it in float64) and only counted: the pass fails with the count at its end.
"""

from __future__ import annotations

import torch

from nc_audit.stats import ClassStats

#: Bytes of float64 work per block on CPU: small enough to stay in cache (2,048 rows of d=512 ran 1.8× slower
#: than 512 rows in the fused kernel on the 2-core CI machine).
CPU_BLOCK_BYTES = 2 * 2**20
#: On a GPU larger blocks amortise the kernel launches.
GPU_BLOCK_BYTES = 64 * 2**20


def block_rows(feature_dim: int, device: torch.device) -> int:
    """Rows per block for ``feature_dim``-wide float64 work on ``device``."""
    budget = GPU_BLOCK_BYTES if device.type != "cpu" else CPU_BLOCK_BYTES
    return max(16, budget // (8 * max(feature_dim, 1)))


class ShiftedSums:
    """Streaming n_c, T_c, Q_c (and S) about per-class shifts; see the module docstring."""

    def __init__(
        self, num_classes: int, feature_dim: int, device: torch.device, with_scatter: bool = True
    ) -> None:
        C, d = num_classes, feature_dim
        kw = {"dtype": torch.float64, "device": device}
        self.device = device
        self.rows_per_block = block_rows(d, device)
        self.counts = torch.zeros(C, **kw)  # (C,) n_c
        self.shifts = torch.zeros(C, d, **kw)  # (C, d) s_c
        self.shifted = torch.zeros(C, dtype=torch.bool, device=device)  # (C,) whether s_c is fixed
        self.deviation_sums = torch.zeros(C, d, **kw)  # (C, d) T_c
        self.squares = torch.zeros(C, **kw)  # (C,) Q_c
        self.scatter = torch.zeros(d, d, **kw) if with_scatter else None  # (d, d) S
        self.nonfinite_rows = 0
        self._gathered = torch.empty(self.rows_per_block, d, **kw)  # work buffers, reused by every block
        self._deviations = torch.empty(self.rows_per_block, d, **kw)
        self._row_squares = torch.empty(self.rows_per_block, **kw)

    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Add rows (n, d) of any float dtype with labels (n,) in 0..C−1 (already validated)."""
        step = self.rows_per_block
        for begin in range(0, int(labels.shape[0]), step):
            self._update_block(features[begin : begin + step], labels[begin : begin + step])

    def update_pair(self, chunk: tuple[torch.Tensor, torch.Tensor]) -> None:
        """:meth:`update` of one (features, labels) pair."""
        self.update(*chunk)

    def _update_block(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        H = features.to(self.device, non_blocking=True)  # (n, d) as stored
        y = labels.to(self.device, torch.long, non_blocking=True)  # (n,)
        n = int(y.shape[0])
        block_counts = torch.bincount(y, minlength=self.num_classes).to(torch.float64)  # (C,)
        self._fix_new_shifts(H, y, block_counts)
        G = torch.index_select(self.shifts, 0, y, out=self._gathered[:n])  # (n, d) s_{y_i}
        D = self._deviations[:n].copy_(H).sub_(G)  # (n, d) h_i − s_{y_i}, in float64
        # ‖·‖ then squared: one pass instead of two (a product then a sum), within 2 ulps per row
        q = torch.linalg.vector_norm(D, 2, 1, out=self._row_squares[:n]).square_()  # (n,) ‖h_i − s_{y_i}‖²
        if not bool(torch.isfinite(q.sum())):
            bad = int((~torch.isfinite(H).all(1)).sum())
            self.nonfinite_rows += bad or int((~torch.isfinite(q)).sum())  # else: float64 squares overflowed
            return
        self.counts += block_counts
        self.deviation_sums.index_add_(0, y, D)
        self.squares.index_add_(0, y, q)
        if self.scatter is not None:
            self.scatter.addmm_(D.T, D)

    def _fix_new_shifts(self, H: torch.Tensor, y: torch.Tensor, block_counts: torch.Tensor) -> None:
        """s_c := this block's mean of class c, for the classes seen here for the first time."""
        new = (block_counts > 0) & ~self.shifted  # (C,)
        if not bool(new.any()):
            return
        sums = torch.zeros_like(self.shifts).index_add_(0, y, H.to(torch.float64))  # (C, d)
        means = sums / block_counts.clamp_min(1.0)[:, None]  # (C, d)
        usable = new & torch.isfinite(means).all(1)  # a class whose first rows hold NaN waits for later ones
        self.shifts[usable] = means[usable]
        self.shifted |= usable

    def absorb(self, other: ShiftedSums) -> None:
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
        self.nonfinite_rows += other.nonfinite_rows

    def pack(self) -> torch.Tensor:
        """The state as one flat float64 tensor (for an all-gather across ranks)."""
        scatter = self.scatter.reshape(-1) if self.scatter is not None else self.counts.new_zeros(0)
        parts = [self.counts, self.shifted.to(torch.float64), self.shifts.reshape(-1)]
        return torch.cat([*parts, self.deviation_sums.reshape(-1), self.squares, scatter])

    def unpacked(self, flat: torch.Tensor) -> ShiftedSums:
        """A new accumulator (same C, d, device, scatter) holding the state :meth:`pack` gave ``flat``."""
        C, d = self.shifts.shape
        result = ShiftedSums(C, d, self.device, with_scatter=self.scatter is not None)
        sizes = [C, C, C * d, C * d, C, d * d if self.scatter is not None else 0]
        counts, shifted, shifts, deviation_sums, squares, scatter = torch.split(flat.to(self.device), sizes)
        result.counts, result.shifted = counts.clone(), shifted > 0.5
        result.shifts, result.deviation_sums = (
            shifts.reshape(C, d).clone(),
            deviation_sums.reshape(C, d).clone(),
        )
        result.squares = squares.clone()
        result.scatter = scatter.reshape(d, d).clone() if self.scatter is not None else None
        return result

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
    def num_classes(self) -> int:
        return int(self.counts.shape[0])
