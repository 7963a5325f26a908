"""SampleLevelStats: the streamed, mergeable statistics behind the sample-level metrics.

Rows are centred by the global mean and normalised (ẑ_i); the accumulator keeps the per-class scatters
S_c = Σ_{y_i=c} ẑ_i ẑ_iᵀ (whose sum is the dual Gram ẐᵀẐ) or, without per-class memory, the dual Gram
alone, plus the class counts — all float64, summed over chunks, shards and ranks.
"""

from __future__ import annotations

import torch

from nc_audit.core.errors import InputError
from nc_audit.core.linalg import unit_rows


def group_by_class(y: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """(class, row indices) for each class present in the labels y (n,), in increasing class order."""
    order = torch.argsort(y, stable=True)  # (n,)
    classes, sizes = torch.unique_consecutive(y[order], return_counts=True)
    return list(zip(classes.tolist(), order.split(sizes.tolist()), strict=True))


class SampleLevelStats:
    """Streaming, mergeable statistics of the centred unit rows ẑ_i = (h_i − μ_G)/‖h_i − μ_G‖, float64.

    State: counts n_c (C,) and either the per-class scatters S_c = Σ_{y_i=c} ẑ_i ẑ_iᵀ (C, d, d), whose
    sum is the dual Gram ẐᵀẐ, or (per_class=False) only ẐᵀẐ (d, d). Every state tensor is a plain sum
    over samples: shards merge by addition, and all-reducing `tensors()` in place (SUM) merges ranks.
    μ_G must be the global mean of all the data (a first pass), identical on every shard.
    """

    def __init__(
        self,
        global_mean: torch.Tensor,
        num_classes: int,
        *,
        per_class: bool = True,
        device: torch.device | str | None = None,
    ):
        if global_mean.ndim != 1 or num_classes < 1:
            raise InputError(
                f"need a (d,) global mean and C >= 1, got {tuple(global_mean.shape)}, C={num_classes}"
            )
        self.device = torch.device(device) if device is not None else global_mean.device
        self.global_mean = global_mean.detach().to(self.device, torch.float64)  # (d,)
        self.num_classes = num_classes
        self.per_class = per_class
        d = self.feature_dim
        kw = {"dtype": torch.float64, "device": self.device}
        self.counts = torch.zeros(num_classes, **kw)  # (C,)
        self._gram = torch.zeros((num_classes, d, d) if per_class else (d, d), **kw)  # (C, d, d) | (d, d)

    @property
    def feature_dim(self) -> int:
        return int(self.global_mean.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.counts.sum().item())

    @property
    def dual_gram(self) -> torch.Tensor:
        """ẐᵀẐ = Σ_i ẑ_i ẑ_iᵀ (d, d): the same nonzero spectrum as K_Z = ẐẐᵀ."""
        return self._gram.sum(0) if self.per_class else self._gram

    @property
    def scatters(self) -> torch.Tensor:
        """Per-class scatters S_c (C, d, d); only with per_class=True."""
        if not self.per_class:
            raise InputError("per-class scatters were not kept (per_class=False)")
        return self._gram

    @property
    def nbytes(self) -> int:
        """Memory held by the state tensors."""
        return sum(t.numel() * t.element_size() for t in self.tensors())

    def centred_unit_rows(
        self, features: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Validated (ẑ_i (n, d) float64, y (n,) long) on this object's device."""
        n, C, d = labels.shape[0] if labels.ndim == 1 else -1, self.num_classes, self.feature_dim
        if features.ndim != 2 or features.shape != (n, d):
            raise InputError(
                f"features {tuple(features.shape)} and labels {tuple(labels.shape)}: expected (n, {d}), (n,)"
            )
        if labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise InputError(f"labels must be integers, got {labels.dtype}")
        y = labels.to(self.device, torch.long)  # (n,)
        if n and (int(y.min()) < 0 or int(y.max()) >= C):
            raise InputError(f"labels hold values outside 0..{C - 1}; is the head the right layer?")
        return unit_rows(features.to(self.device, torch.float64) - self.global_mean), y

    def update(self, features: torch.Tensor, labels: torch.Tensor) -> SampleLevelStats:
        """Add a batch (features (n, d), labels (n,)) in place; returns self."""
        Z_hat, y = self.centred_unit_rows(features, labels)  # (n, d), (n,)
        return self._add(Z_hat, y)

    def update_centred(self, centred: torch.Tensor, labels: torch.Tensor) -> SampleLevelStats:
        """:meth:`update` for rows a caller has already validated and centred, h_i − μ_G in float64
        (n, d) on this object's device, with labels (n,) long (the fused second pass); returns self."""
        return self._add(unit_rows(centred), labels)

    def _add(self, Z_hat: torch.Tensor, y: torch.Tensor) -> SampleLevelStats:
        self.counts += torch.bincount(y, minlength=self.num_classes).to(torch.float64)
        if not self.per_class:
            self._gram += Z_hat.T @ Z_hat  # (d, d)
            return self
        for c, rows in group_by_class(y):
            self._gram[c] += Z_hat[rows].T @ Z_hat[rows]  # (d, d)
        return self

    def merge(self, other: SampleLevelStats) -> SampleLevelStats:
        """Statistics of the union of two disjoint sample sets (a plain sum: exact up to rounding)."""
        same = other.num_classes == self.num_classes and other.per_class == self.per_class
        if not (same and torch.equal(other.global_mean.to(self.device), self.global_mean)):
            raise InputError("cannot merge sample-level statistics with another global mean, C or per_class")
        tensors = [a + b.to(self.device) for a, b in zip(self.tensors(), other.tensors(), strict=True)]
        return SampleLevelStats.from_tensors(self.global_mean, self.num_classes, tensors)

    def tensors(self) -> list[torch.Tensor]:
        """The live state tensors [counts (C,), scatters (C, d, d) or dual Gram (d, d)], all sums."""
        return [self.counts, self._gram]

    @classmethod
    def from_tensors(
        cls, global_mean: torch.Tensor, num_classes: int, tensors: list[torch.Tensor]
    ) -> SampleLevelStats:
        """Rebuild from `tensors()` (e.g. after an all-reduce); per_class follows the second tensor's shape."""
        counts, gram = tensors
        stats = cls(global_mean, num_classes, per_class=gram.ndim == 3, device=counts.device)
        if counts.shape != stats.counts.shape or gram.shape != stats._gram.shape:
            raise InputError(f"state shapes {tuple(counts.shape)}, {tuple(gram.shape)} do not fit C, d")
        stats.counts, stats._gram = counts.to(torch.float64), gram.to(torch.float64)
        return stats
