"""The two streaming passes over a dump (DESIGN.md, Scale), with row validation.

Pass 1 builds ClassStats and checks every row (labels in 0..C−1, finite features); pass 2 counts the
NC4 decisions with the class means of pass 1. Bad rows are counted over the whole pass, so the error can
say how many.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from nc_audit.distributed import DistributedContext
from nc_audit.errors import InputError
from nc_audit.metrics.collapse import DecisionCounter, WithinProjection
from nc_audit.metrics.sample_level import SampleLevelStats
from nc_audit.progress import Tracker
from nc_audit.sources.checkpoints import Head
from nc_audit.sources.dumps import SplitInfo, iter_chunks
from nc_audit.stats import ClassStats

#: Bytes of float64 work per compute block. A chunk read from HDF5 (~32 MB) is processed in blocks this
#: small because every temporary above glibc's mmap threshold costs fresh page faults: measured on the
#: 2-core CI machine, pass 1 over 200,000×512 took 1.19 s in 16,384-row blocks and 0.28 s in 2,048-row ones.
BLOCK_BYTES = 8 * 2**20


def blocks(
    chunks: Iterator[tuple[torch.Tensor, torch.Tensor]], feature_dim: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Split streamed chunks into compute blocks of about BLOCK_BYTES of float64 (views, no copies)."""
    rows = max(64, BLOCK_BYTES // (8 * max(feature_dim, 1)))
    for features, labels in chunks:
        for start in range(0, int(labels.shape[0]), rows):
            yield features[start : start + rows], labels[start : start + rows]


class RowValidator:
    """Counts bad rows of a pass (labels outside 0..C−1, NaN/Inf features) so the error can say how many."""

    def __init__(self, info: SplitInfo, num_classes: int) -> None:
        self.where = f"{info.path}" + (f" [{info.split}]" if info.split else "")
        self.num_samples = info.num_samples
        self.num_classes = num_classes
        self.bad_labels = 0
        self.bad_label_example: int | None = None
        self.nonfinite_rows = 0

    def check(self, features: torch.Tensor, labels: torch.Tensor) -> bool:
        """Count the chunk's bad rows; True while the whole pass so far is clean."""
        out_of_range = (labels < 0) | (labels >= self.num_classes)
        if bool(out_of_range.any()):
            self.bad_labels += int(out_of_range.sum())
            if self.bad_label_example is None:
                self.bad_label_example = int(labels[out_of_range][0])
        # a float64 row sum is finite iff every entry is (float16/32 values cannot overflow it): 5× cheaper
        # than an elementwise isfinite over the block
        row_sums = features.sum(dim=1, dtype=torch.float64)  # (n,)
        self.nonfinite_rows += int((~torch.isfinite(row_sums)).sum())
        return self.bad_labels == 0 and self.nonfinite_rows == 0

    def raise_if_bad(self, ctx: DistributedContext | None = None) -> None:
        """Raise InputError when any rank saw bad rows (counts summed over ranks, so all raise together)."""
        if ctx is not None and ctx.distributed:
            totals = ctx.sum_(torch.tensor([self.bad_labels, self.nonfinite_rows], dtype=torch.int64))
            self.bad_labels, self.nonfinite_rows = (int(v) for v in totals)
        if self.bad_labels:
            example = (
                f"e.g. {self.bad_label_example}" if self.bad_label_example is not None else "on another rank"
            )
            raise InputError(
                f"{self.where}: {self.bad_labels} labels lie outside 0..{self.num_classes - 1} "
                f"({example}); the head has {self.num_classes} classes — is --head the right layer?"
            )
        if self.nonfinite_rows:
            raise InputError(
                f"{self.where}: {self.nonfinite_rows} of {self.num_samples} feature rows hold NaN or Inf values"
            )


def accumulate_stats(
    info: SplitInfo,
    num_classes: int,
    device: torch.device,
    tracker: Tracker,
    chunk_rows: int | None = None,
    with_scatter: bool = True,
    ctx: DistributedContext | None = None,
) -> ClassStats:
    """First pass: ClassStats of one split, validating every row; errors name the file and what is wrong.

    ``with_scatter=False`` skips the d×d within-class scatter (N·d² flops) when NC1 comes from a
    WithinProjection in the second pass instead. Under torchrun (``ctx``) each rank streams its slice
    of the rows and the statistics are merged exactly across ranks."""
    ctx = ctx or DistributedContext()
    stats = ClassStats.empty(num_classes, info.feature_dim, device=device, with_scatter=with_scatter)
    validator = RowValidator(info, num_classes)
    with tracker.stage(f"statistics {Path(info.path).name}", info.num_samples) as advance:
        for features, labels in blocks(
            iter_chunks(info, chunk_rows, ctx.row_range(info.num_samples)), info.feature_dim
        ):
            if validator.check(features, labels):
                stats.update(features.to(device), labels.to(device))
            advance(int(labels.shape[0]))
    validator.raise_if_bad(ctx)
    stats = ctx.merge_class_stats(stats)
    present = int(stats.present.sum())
    if present < 2:
        raise InputError(
            f"{validator.where}: only {present} class present; Neural Collapse metrics need at least 2"
        )
    return stats


def count_decisions(
    info: SplitInfo,
    stats: ClassStats,
    head: Head,
    device: torch.device,
    tracker: Tracker,
    chunk_rows: int | None = None,
    sample_stats: SampleLevelStats | None = None,
    projection: WithinProjection | None = None,
    ctx: DistributedContext | None = None,
) -> DecisionCounter:
    """Second pass: classifier vs nearest-class-mean decisions (NC4), with the means of ``stats``; the
    sample-level scatters (``sample_stats``, which need the global mean of pass 1) ride along."""
    present = stats.present.nonzero().flatten()  # (C',)
    counter = DecisionCounter(
        class_means=stats.class_means[present],
        candidate_classes=present,
        head_weight=head.weight.to(device),
        head_bias=head.bias.to(device) if head.bias is not None else None,
    )
    ctx = ctx or DistributedContext()
    validator = RowValidator(info, head.num_classes)
    with tracker.stage(f"decisions {Path(info.path).name}", info.num_samples) as advance:
        for features, labels in blocks(
            iter_chunks(info, chunk_rows, ctx.row_range(info.num_samples)), info.feature_dim
        ):
            if validator.check(features, labels):
                features, labels = features.to(device), labels.to(device)
                counter.update(features, labels)
                if sample_stats is not None:
                    sample_stats.update(features, labels)
                if projection is not None:
                    projection.update(features, labels)
            advance(int(labels.shape[0]))
    validator.raise_if_bad(ctx)
    if ctx.distributed:  # every per-rank sum becomes the sum over all rows
        counter.set_counts(ctx.sum_(counter.counts()))
        if projection is not None:
            ctx.sum_(projection.squared)
            projection.samples = int(ctx.sum_(torch.tensor([projection.samples])).item())
        if sample_stats is not None:
            for tensor in sample_stats.tensors():
                ctx.sum_(tensor)
    return counter
