"""ClassStats: streaming, mergeable sufficient statistics of labelled features (float64).

One pass over the data builds counts n_c, class sums Σ h_i, the centred within-class scatter
Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ and the per-class squared deviations Σ_{y_i=c} ‖h_i − μ_c‖².
Two ClassStats of disjoint shards merge exactly with the pairwise update of Chan, Golub & LeVeque
(1979): for each class, M2 = M2_a + M2_b + (n_a n_b / n) δ δᵀ with δ = μ_a − μ_b. This is the
torchmetrics idea (update per batch, merge across shards or ranks, compute at the end) for class
statistics.
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
                         pass (nc_audit.metrics.collapse.WithinProjection), which costs N·d·C, not N·d²
    sq_dev:      (C,)    Σ_{y_i=c} ‖h_i − μ_c‖²                (trace of each class's scatter)
    """

    counts: torch.Tensor
    sums: torch.Tensor
    scatter: torch.Tensor | None
    sq_dev: torch.Tensor

    @classmethod
    def empty(
        cls, num_classes: int, feature_dim: int, device: torch.device | None = None, with_scatter: bool = True
    ) -> ClassStats:
        """Statistics of no samples, ready for :meth:`update`."""
        kw = {"dtype": torch.float64, "device": device}
        return cls(
            counts=torch.zeros(num_classes, **kw),
            sums=torch.zeros(num_classes, feature_dim, **kw),
            scatter=torch.zeros(feature_dim, feature_dim, **kw) if with_scatter else None,
            sq_dev=torch.zeros(num_classes, **kw),
        )

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

    # --- streaming -------------------------------------------------------------------------------
    def update(self, features: torch.Tensor, labels: torch.Tensor) -> ClassStats:
        """Add a batch in place (features (n, d) of any float dtype, labels (n,)); returns self."""
        batch = ClassStats.from_batch(
            features.to(self.sums.device), labels, self.num_classes, with_scatter=self.scatter is not None
        )
        merged = self.merge(batch)
        self.counts, self.sums, self.scatter, self.sq_dev = (
            merged.counts,
            merged.sums,
            merged.scatter,
            merged.sq_dev,
        )
        return self

    def merge(self, other: ClassStats) -> ClassStats:
        """Statistics of the union of two disjoint sample sets (Chan et al. pairwise update)."""
        if other.sums.shape != self.sums.shape:
            shapes = f"{tuple(other.sums.shape)} into {tuple(self.sums.shape)}"
            raise ValueError(f"cannot merge statistics of shape {shapes}")
        n_a, n_b = self.counts, other.counts.to(self.counts.device)  # (C,), (C,)
        n = n_a + n_b
        mu_a = self.sums / n_a.clamp_min(1.0)[:, None]  # (C, d)
        mu_b = other.sums.to(self.sums.device) / n_b.clamp_min(1.0)[:, None]  # (C, d)
        weight = torch.where(n > 0, n_a * n_b / n.clamp_min(1.0), torch.zeros_like(n))  # (C,)
        delta = mu_a - mu_b  # (C, d)
        scaled = delta * weight.sqrt()[:, None]  # (C, d)
        return ClassStats(
            counts=n,
            sums=self.sums + other.sums.to(self.sums.device),
            scatter=None
            if self.scatter is None or other.scatter is None
            else self.scatter + other.scatter.to(self.scatter.device) + scaled.T @ scaled,
            sq_dev=self.sq_dev + other.sq_dev.to(self.sq_dev.device) + weight * (delta * delta).sum(1),
        )

    # --- communication (see DistributedContext.merge_class_stats) ----------------------------------
    def pack(self) -> torch.Tensor:
        """All statistics as one flat float64 tensor (for communication)."""
        scatter = self.scatter.reshape(-1) if self.scatter is not None else self.counts.new_zeros(0)
        return torch.cat([self.counts, self.sums.reshape(-1), scatter, self.sq_dev])

    @classmethod
    def unpack(cls, flat: torch.Tensor, num_classes: int, feature_dim: int) -> ClassStats:
        """Inverse of :meth:`pack`."""
        C, d = num_classes, feature_dim
        with_scatter = flat.numel() == 2 * C + C * d + d * d
        sizes = [C, C * d, d * d if with_scatter else 0, C]
        counts, sums, scatter, sq_dev = torch.split(flat, sizes)
        kept = scatter.reshape(d, d).clone() if with_scatter else None
        return cls(counts.clone(), sums.reshape(C, d).clone(), kept, sq_dev.clone())

    # --- derived, read-only ---------------------------------------------------------------------
    def subset(self, classes: torch.Tensor) -> ClassStats:
        """Statistics restricted to some classes (a boolean mask or indices); the scatter is unchanged
        because classes without samples contribute nothing to it."""
        return ClassStats(self.counts[classes], self.sums[classes], self.scatter, self.sq_dev[classes])

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
