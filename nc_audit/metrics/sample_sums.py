"""SampleSums: what the sample-level metrics read — the streamed sums over the centred unit rows
ẑ_i = (h_i − μ_G)/‖h_i − μ_G‖ — and the validation every row goes through before it is summed.

The streaming accumulator that fills them is :class:`nc_audit.engine.sample_stats.SampleLevelStats`;
the metrics are :func:`nc_audit.metrics.sample_level.sample_level_metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nc_audit.core.errors import InputError
from nc_audit.core.linalg import unit_rows


def group_by_class(y: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """(class, row indices) for each class present in the labels y (n,), in increasing class order."""
    order = torch.argsort(y, stable=True)  # (n,)
    classes, sizes = torch.unique_consecutive(y[order], return_counts=True)
    return list(zip(classes.tolist(), order.split(sizes.tolist()), strict=True))


@dataclass(frozen=True)
class SampleSums:
    """The streamed sums behind the sample-level metrics, over the centred unit rows
    ẑ_i = (h_i − μ_G)/‖h_i − μ_G‖ (float64): the class counts n_c (C,) and either the per-class scatters
    S_c = Σ_{y_i=c} ẑ_i ẑ_iᵀ (C, d, d), whose sum is the dual Gram ẐᵀẐ, or that dual Gram alone (d, d).
    Filled by :class:`nc_audit.engine.sample_stats.SampleLevelStats`."""

    global_mean: torch.Tensor  # (d,) μ_G of all the data
    counts: torch.Tensor  # (C,) n_c
    gram: torch.Tensor  # (C, d, d) S_c, or (d, d) ẐᵀẐ

    @property
    def per_class(self) -> bool:
        return self.gram.ndim == 3

    @property
    def num_classes(self) -> int:
        return int(self.counts.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.global_mean.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.counts.sum().item())

    @property
    def device(self) -> torch.device:
        return self.counts.device

    @property
    def dual_gram(self) -> torch.Tensor:
        """ẐᵀẐ = Σ_i ẑ_i ẑ_iᵀ (d, d): the same nonzero spectrum as K_Z = ẐẐᵀ."""
        return self.gram.sum(0) if self.per_class else self.gram

    @property
    def scatters(self) -> torch.Tensor:
        """Per-class scatters S_c (C, d, d); only when they were kept."""
        if not self.per_class:
            raise InputError("per-class scatters were not kept (per_class=False)")
        return self.gram

    def centred_unit_rows(
        self, features: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Validated (ẑ_i (n, d) float64, y (n,) long) on this object's device."""
        return centred_unit_rows(features, labels, self.global_mean, self.num_classes)


def centred_unit_rows(
    features: torch.Tensor, labels: torch.Tensor, global_mean: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """ẑ_i = (h_i − μ_G)/‖h_i − μ_G‖ (n, d) float64 and y (n,) long, on μ_G's device, after checking the
    shapes and that the labels are integers in 0..C−1."""
    n = labels.shape[0] if labels.ndim == 1 else -1
    C, d = num_classes, int(global_mean.shape[0])
    if features.ndim != 2 or features.shape != (n, d):
        raise InputError(
            f"features {tuple(features.shape)} and labels {tuple(labels.shape)}: expected (n, {d}), (n,)"
        )
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise InputError(f"labels must be integers, got {labels.dtype}")
    y = labels.to(global_mean.device, torch.long)  # (n,)
    if n and (int(y.min()) < 0 or int(y.max()) >= C):
        raise InputError(f"labels hold values outside 0..{C - 1}; is the head the right layer?")
    return unit_rows(features.to(global_mean.device, torch.float64) - global_mean), y
