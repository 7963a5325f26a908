"""ClassStats: the sufficient statistics of labelled features that the class-level metrics read (float64).

Counts n_c, class sums Σ h_i, the centred within-class scatter Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ and
the per-class squared deviations Σ_{y_i=c} ‖h_i − μ_c‖². A streaming measurement builds them with the
first pass's accumulator (:class:`nc_audit.engine.first_pass.ShiftedSums`, merged across workers and
ranks by :mod:`nc_audit.engine.state`); an in-memory batch with :meth:`ClassStats.from_batch`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ClassStats:
    """Sufficient statistics of (features, labels) for C classes in d dimensions, all float64.

    counts:      (C,)    n_c
    sums:        (C, d)  Σ_{y_i=c} h_i
    scatter:     (d, d)  Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ   (within-class, centred per class), or None
                         when not tracked: the streaming measure gets NC1 from a projection in its second
                         pass (nc_audit.engine.accumulators.WithinProjection), which costs N·d·C, not N·d²
    sq_dev:      (C,)    Σ_{y_i=c} ‖h_i − μ_c‖²                (trace of each class's scatter)
    """

    counts: torch.Tensor
    sums: torch.Tensor
    scatter: torch.Tensor | None
    sq_dev: torch.Tensor

    @classmethod
    def from_batch(
        cls, features: torch.Tensor, labels: torch.Tensor, num_classes: int, with_scatter: bool = True
    ) -> ClassStats:
        """Exact statistics of one batch, computed in float64 with per-class centring (no cancellation)."""
        H = features.to(torch.float64)  # (n, d)
        y = labels.to(device=H.device, dtype=torch.long)  # (n,)
        d = H.shape[1]
        counts = torch.bincount(y, minlength=num_classes).to(torch.float64)  # (C,)
        sums = torch.zeros(num_classes, d, dtype=torch.float64, device=H.device)  # (C, d)
        sums.index_add_(0, y, H)
        means = sums / counts.clamp_min(1.0)[:, None]  # (C, d)
        D = H - means[y]  # (n, d) deviations from the batch's class means
        scatter = D.T @ D if with_scatter else None  # (d, d)
        sq_dev = torch.zeros(num_classes, dtype=torch.float64, device=H.device)  # (C,)
        sq_dev.index_add_(0, y, (D * D).sum(1))
        return cls(counts=counts, sums=sums, scatter=scatter, sq_dev=sq_dev)

    # --- derived, read-only ---------------------------------------------------------------------
    def subset(self, classes: torch.Tensor) -> ClassStats:
        """Statistics restricted to some classes (a boolean mask or indices); the scatter is unchanged
        because classes without samples contribute nothing to it."""
        return ClassStats(self.counts[classes], self.sums[classes], self.scatter, self.sq_dev[classes])

    def restricted_to(self, keep: torch.Tensor) -> ClassStats:
        """The same C classes with those outside ``keep`` (C,) bool emptied (no samples, so no longer
        ``present``); the scatter, which would still hold their samples, is dropped (None)."""
        keep = keep.to(self.counts.device)
        return ClassStats(
            torch.where(keep, self.counts, 0.0),
            torch.where(keep[:, None], self.sums, 0.0),
            None,
            torch.where(keep, self.sq_dev, 0.0),
        )

    @property
    def num_classes(self) -> int:
        return int(self.counts.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.sums.shape[1])

    @property
    def num_samples(self) -> int:
        return int(self.counts.sum().item())

    @property
    def present(self) -> torch.Tensor:
        """Boolean mask (C,) of the classes with at least one sample."""
        return self.counts > 0

    @property
    def class_means(self) -> torch.Tensor:
        """μ_c (C, d); rows of absent classes are zero."""
        return self.sums / self.counts.clamp_min(1.0)[:, None]

    @property
    def global_mean(self) -> torch.Tensor:
        """μ_G = (1/N) Σ_i h_i, the sample-weighted mean (not the mean of class means). (d,)"""
        return self.sums.sum(0) / self.counts.sum()

    @property
    def within_cov(self) -> torch.Tensor:
        """Σ_W = (1/N) Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ. (d, d)"""
        if self.scatter is None:
            raise ValueError("these statistics were accumulated without the within-class scatter")
        return self.scatter / self.counts.sum()

    @property
    def class_variances(self) -> torch.Tensor:
        """σ_c² = (1/n_c) Σ_{y_i=c} ‖h_i − μ_c‖² (C,); zero for absent classes."""
        return self.sq_dev / self.counts.clamp_min(1.0)
