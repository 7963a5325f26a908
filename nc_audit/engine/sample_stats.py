"""SampleLevelStats: the streaming accumulator behind the sample-level metrics.

Rows are centred by the global mean and normalised (ẑ_i); the accumulator keeps the per-class scatters
S_c = Σ_{y_i=c} ẑ_i ẑ_iᵀ (whose sum is the dual Gram ẐᵀẐ) or, without per-class memory, the dual Gram
alone, plus the class counts — all float64 plain sums, so workers and ranks merge them by addition
(:mod:`nc_audit.engine.state`). :meth:`SampleLevelStats.sums` hands the result to
:func:`nc_audit.metrics.sample_level.sample_level_metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch

from nc_audit.core.devices import TensorPlacement
from nc_audit.core.errors import InputError
from nc_audit.core.linalg import unit_rows
from nc_audit.engine.blocks import add_class_counts
from nc_audit.engine.class_scatters import add_class_scatters
from nc_audit.engine.state import Accumulator, Reduction
from nc_audit.metrics.sample_sums import SampleSums, centred_unit_rows, group_by_class

#: Device types whose per-class scatters split the rows by class on the host (one GEMM per class; on CPU
#: reading the sizes costs nothing). Elsewhere the sizes stay on the device
#: (:func:`nc_audit.engine.class_scatters.add_class_scatters`).
HOST_SPLIT_DEVICES = ("cpu",)


class SampleLevelStats(Accumulator):
    """Streaming counts n_c (C,) and per-class scatters S_c (C, d, d) — or, with ``per_class=False``, only
    the dual Gram ẐᵀẐ (d, d) — of ẑ_i = (h_i − μ_G)/‖h_i − μ_G‖, float64. μ_G must be the global mean of
    all the data (a first pass), identical for every worker and rank."""

    reductions: ClassVar[Mapping[str, Reduction]] = {"counts": "sum", "gram": "sum"}

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
        d = int(self.global_mean.shape[0])
        kw: TensorPlacement = {"dtype": torch.float64, "device": self.device}
        self.counts = torch.zeros(num_classes, **kw)  # (C,)
        self.gram = torch.zeros((num_classes, d, d) if per_class else (d, d), **kw)  # (C, d, d) | (d, d)

    def check_mergeable(self, other: SampleLevelStats) -> None:
        """Shares merge only about the same global mean, class count and kind of scatter."""
        super().check_mergeable(other)
        if not torch.equal(other.global_mean.to(self.device), self.global_mean):
            raise ValueError("cannot merge sample-level statistics centred on another global mean")

    @property
    def nbytes(self) -> int:
        """Memory held by the state tensors."""
        return sum(t.numel() * t.element_size() for t in (self.counts, self.gram))

    def update(self, features: torch.Tensor, labels: torch.Tensor) -> SampleLevelStats:
        """Add a batch (features (n, d), labels (n,)) in place; returns self."""
        Z_hat, y = centred_unit_rows(features, labels, self.global_mean, self.num_classes)  # (n, d), (n,)
        return self._add(Z_hat, y)

    def update_centred(self, centred: torch.Tensor, labels: torch.Tensor) -> SampleLevelStats:
        """:meth:`update` for rows a caller has already validated and centred, h_i − μ_G in float64
        (n, d) on this object's device, with labels (n,) long (the fused second pass); returns self."""
        return self._add(unit_rows(centred), labels)

    def _add(self, Z_hat: torch.Tensor, y: torch.Tensor) -> SampleLevelStats:
        add_class_counts(self.counts, y)
        if not self.per_class:
            self.gram += Z_hat.T @ Z_hat  # (d, d)
        elif self.device.type in HOST_SPLIT_DEVICES:  # one GEMM per class present, sized on the host
            for c, rows in group_by_class(y):
                self.gram[c] += Z_hat[rows].T @ Z_hat[rows]  # (d, d)
        else:  # an accelerator: the class sizes stay on the device (no read-back per block)
            add_class_scatters(self.gram, Z_hat, y)
        return self

    def sums(self) -> SampleSums:
        """The accumulated sums, for the metrics."""
        return SampleSums(self.global_mean, self.counts, self.gram)
