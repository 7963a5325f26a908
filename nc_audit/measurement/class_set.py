"""Which of the head's classes a measurement keeps (``--min-class-samples K``) and what that leaves out.

Classes without samples are never measured (no empty class inside a mean, never a silent NaN); with
K > 1 the classes with fewer than K samples of the means split are left out too, with their samples and
their head rows, from every metric. Every report states the result (:meth:`ClassSet.convention`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nc_audit.core.class_stats import ClassStats
from nc_audit.core.errors import InputError


@dataclass(frozen=True)
class ClassSet:
    """The kept classes: ``keep`` (C_head,) bool, and what was left out."""

    keep: torch.Tensor
    min_samples: int
    head_classes: int
    kept: int
    empty: int  # classes of the head without samples
    sparse: int  # classes with 1..K−1 samples, left out
    dropped_samples: int  # samples of the sparse classes

    def convention(self) -> str:
        """One line for the report's conventions."""
        line = (
            f"{self.kept} of the head's {self.head_classes} classes kept (>= {self.min_samples} samples each); "
            f"{self.empty} without samples"
        )
        if self.min_samples > 1:
            line += f", {self.sparse} with fewer samples left out ({self.dropped_samples} samples dropped)"
        return line


def select_classes(stats: ClassStats, min_samples: int, where: str) -> ClassSet:
    """The classes of ``stats`` (the means split's) with at least ``min_samples`` samples (≥ 1)."""
    if min_samples < 1:
        raise InputError(f"--min-class-samples {min_samples}: expected a whole number >= 1")
    counts = stats.counts
    keep = counts >= min_samples  # (C,)
    sparse = (counts > 0) & ~keep
    kept = int(keep.sum())
    if kept < 2:
        raise InputError(
            f"{where}: only {kept} class has at least {min_samples} samples (--min-class-samples); "
            "Neural Collapse metrics need at least 2"
        )
    return ClassSet(
        keep=keep.cpu(),
        min_samples=min_samples,
        head_classes=int(counts.shape[0]),
        kept=kept,
        empty=int((counts == 0).sum()),
        sparse=int(sparse.sum()),
        dropped_samples=int(counts[sparse].sum()),
    )
