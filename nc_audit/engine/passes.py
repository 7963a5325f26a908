"""The two streaming passes over a dump (docs/DESIGN.md, "The streaming engine"), with row validation.

Pass 1 builds ClassStats and checks every row (labels in 0..C−1, finite features); pass 2 counts the
NC4 decisions with the class means of pass 1. Bad rows are counted over the whole pass, so the error can
say how many.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from nc_audit.core.class_stats import ClassStats
from nc_audit.core.errors import InputError
from nc_audit.core.progress import Tracker
from nc_audit.core.threads import single_threaded_kernels, worker_count
from nc_audit.distributed import DistributedContext
from nc_audit.engine.accumulators import DecisionCounter, WithinProjection
from nc_audit.engine.decision_sample import DecisionSample
from nc_audit.engine.first_pass import ShiftedSums
from nc_audit.engine.sample_stats import SampleLevelStats
from nc_audit.engine.second_pass import SecondPass
from nc_audit.engine.state import merge_all, reduce_over_ranks
from nc_audit.engine.workers import RoundRobin
from nc_audit.io.checkpoints.load import Head
from nc_audit.io.dumps.chunks import Chunk, ChunkReader
from nc_audit.io.dumps.overflow import overflow_rows
from nc_audit.io.dumps.reader import SplitInfo, open_chunks

#: The second pass gives each worker its own copy of the sample-level scatters (C·d² float64) only when
#: they are at most this large; larger ones are filled by one worker.
REPLICA_BYTES = 256 * 2**20


class RowValidator:
    """Counts bad rows of a pass (labels outside 0..C−1, NaN/Inf features) so the error can say how many."""

    def __init__(self, info: SplitInfo, num_classes: int) -> None:
        self.where = f"{info.path}" + (f" [{info.split}]" if info.split else "")
        self.info = info
        self.num_samples = info.num_samples
        self.num_classes = num_classes
        self.bad_labels = 0
        self.bad_label_example: int | None = None  # row (within this rank's rows) of the first bad label
        self.rows_seen = 0
        self.nonfinite_rows = 0
        self.may_overflow = np.dtype(info.feature_dtype).itemsize >= 8  # only float64 squares can overflow

    def check_labels(self, labels: torch.Tensor) -> bool:
        """Count the chunk's labels outside 0..C−1; True while every label so far was in range."""
        out_of_range = (labels < 0) | (labels >= self.num_classes)
        if bool(out_of_range.any()):
            if self.bad_label_example is None:  # the row of the first one (its value is never echoed)
                self.bad_label_example = self.rows_seen + int(out_of_range.nonzero()[0, 0])
            self.bad_labels += int(out_of_range.sum())
        self.rows_seen += int(labels.shape[0])
        return self.bad_labels == 0

    def raise_if_bad(self, ctx: DistributedContext | None = None) -> None:
        """Raise InputError when any rank saw bad rows (counts summed over ranks, so all raise together)."""
        if ctx is not None and ctx.distributed:
            counts = torch.tensor([self.bad_labels, self.nonfinite_rows], dtype=torch.int64)
            self.bad_labels, self.nonfinite_rows = (int(v) for v in ctx.all_reduce_sum(counts))
        if self.bad_labels:
            # a count, a range and a row: never the raw value (bytes of an input, decoded)
            example = (
                f"the first at row {self.bad_label_example}"
                if self.bad_label_example is not None and not (ctx is not None and ctx.distributed)
                else "found in this split"
            )
            raise InputError(
                f"{self.where}: {self.bad_labels} labels lie outside 0..{self.num_classes - 1} "
                f"({example}); the head has {self.num_classes} classes — is --head the right layer?"
            )
        if self.nonfinite_rows and self.may_overflow and not (ctx is not None and ctx.distributed):
            # name the rows (io/dumps/overflow.py)
            cause = overflow_rows(self.info).describe(self.num_samples)
            if cause is not None:
                raise InputError(f"{self.where}: {cause}")
        if self.nonfinite_rows:
            raise InputError(
                f"{self.where}: {self.nonfinite_rows} of {self.num_samples} feature rows hold NaN or Inf values"
                + (
                    " (or values whose float64 squares overflow: sizes beyond about 1e150 times the first rows')"
                    if self.may_overflow
                    else ""
                )
            )


Update = Callable[[torch.Tensor, torch.Tensor], None]
#: An update that also takes the chunk's first row within the split.
RowUpdate = Callable[[torch.Tensor, torch.Tensor, int], None]
#: An Update, or a RowUpdate where ``with_rows`` says so (the flag, not the type, tells them apart).
AnyUpdate = Callable[..., None]


def stream(
    info: SplitInfo,
    chunk_rows: int | None,
    ctx: DistributedContext,
    validator: RowValidator,
    tracker: Tracker,
    description: str,
    updates: Sequence[Update] | Sequence[RowUpdate],
    with_rows: bool = False,
    keep: torch.Tensor | None = None,
) -> None:
    """One pass over this rank's rows: chunk i goes to ``updates[i % W]``, each on its own thread with
    its own read buffer (:mod:`nc_audit.io.dumps.chunks`, :mod:`nc_audit.engine.workers`); labels are checked
    here, in file order, and nothing more is handed out once one is out of range. ``with_rows``: the
    updates also take the chunk's first row within the split. ``keep`` (C,) bool: only rows whose label
    it marks reach the updates (--min-class-samples; with ``with_rows`` the first row is the chunk's, so
    row-numbered decision samples and ``keep`` do not go together, see :func:`count_decisions`)."""
    if keep is not None:
        updates = [_kept_rows(update, keep.cpu(), with_rows) for update in updates]
    with (
        open_chunks(info, chunk_rows, ctx.row_range(info.num_samples)) as reader,
        tracker.stage(description, info.num_samples, unit="rows") as advance,
        single_threaded_kernels(len(updates) > 1),
        RoundRobin([_reading(reader, update, with_rows) for update in updates]) as pool,
    ):
        for chunk in reader:
            if validator.check_labels(chunk.labels):
                pool.submit(chunk)
            advance(chunk.num_rows)


def _kept_rows(update: AnyUpdate, keep: torch.Tensor, with_rows: bool) -> AnyUpdate:
    """``update`` fed only the rows whose label ``keep`` marks (and the chunk's first row, ``with_rows``)."""

    def filtered(features: torch.Tensor, labels: torch.Tensor, *first_row: int) -> None:
        rows = keep[labels.to(torch.long).cpu()]  # (n,)
        if bool(rows.all()):
            update(features, labels, *first_row)
        elif bool(rows.any()):
            update(features[rows.to(features.device)], labels[rows.to(labels.device)], *first_row)

    return filtered


def _reading(reader: ChunkReader, update: AnyUpdate, with_rows: bool) -> Callable[[Chunk], None]:
    """A worker's handler: read the chunk's features into this worker's buffer, then ``update``."""
    buffer = reader.buffer()

    def handle(chunk: Chunk) -> None:
        if with_rows:
            update(reader.features(chunk, buffer), chunk.labels, chunk.begin)
        else:
            update(reader.features(chunk, buffer), chunk.labels)

    return handle


def _first_pass(
    info: SplitInfo,
    num_classes: int,
    device: torch.device,
    tracker: Tracker,
    chunk_rows: int | None,
    with_scatter: bool,
    ctx: DistributedContext,
    validator: RowValidator,
    shifts: torch.Tensor | None,
    keep: torch.Tensor | None = None,
) -> ShiftedSums:
    """One streaming pass of ShiftedSums (one per worker, merged, then merged across ranks)."""
    workers = worker_count(device)
    sums = [ShiftedSums(num_classes, info.feature_dim, device, with_scatter, shifts) for _ in range(workers)]
    exact = " (per-class centring)" if shifts is not None else ""
    description = f"statistics {Path(info.path).name}{exact}"
    updates = [accumulator.update for accumulator in sums]
    stream(info, chunk_rows, ctx, validator, tracker, description, updates, keep=keep)
    total = merge_all(sums)
    validator.nonfinite_rows = total.nonfinite_rows
    return reduce_over_ranks(total, ctx)  # every rank merges every rank's sums, in rank order


def accumulate_stats(
    info: SplitInfo,
    num_classes: int,
    device: torch.device,
    tracker: Tracker,
    chunk_rows: int | None = None,
    with_scatter: bool = True,
    ctx: DistributedContext | None = None,
    keep: torch.Tensor | None = None,
) -> ClassStats:
    """First pass: ClassStats of one split, validating every row; errors name the file and what is wrong.

    ``with_scatter=False`` skips the d×d within-class scatter (N·d² flops) when NC1 comes from a
    WithinProjection in the second pass instead. The chunks go round-robin to one fused accumulator per
    core (:mod:`nc_audit.engine.workers`, :mod:`nc_audit.engine.first_pass`); under torchrun (``ctx``) each rank
    streams its slice of the rows. Accumulators of workers and ranks merge about their shifts
    (ShiftedSums.combine), so neither the core count nor the rank count changes the precision. When the
    single shift would cost σ_c² more than a few digits (nearly collapsed classes), the pass runs again
    centring every class on its mean from the first run."""
    ctx = ctx or DistributedContext()
    validator = RowValidator(info, num_classes)
    total = _first_pass(
        info, num_classes, device, tracker, chunk_rows, with_scatter, ctx, validator, None, keep
    )
    validator.raise_if_bad(ctx)
    if total.ill_conditioned():  # identical on every rank: all of them run the exact pass again
        means = total.class_stats().class_means  # (C, d)
        validator = RowValidator(info, num_classes)
        total = _first_pass(
            info, num_classes, device, tracker, chunk_rows, with_scatter, ctx, validator, means, keep
        )
    stats = total.class_stats()
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
    decision_samples: int | None = None,
    decision_seed: int = 0,
    float32: bool | None = None,
    keep: torch.Tensor | None = None,
) -> SecondPass:
    """Second pass: classifier vs nearest-class-mean decisions (NC4), with the means of ``stats``; the
    sample-level scatters (``sample_stats``, empty, centred on the global mean of pass 1) and the NC1
    ``projection`` (empty) ride along. Returns the merged pass: ``.counter``, ``.projection`` and
    ``.sample_stats`` hold the sums over all rows (of every rank). Like the first pass, the chunks go
    round-robin to one worker per core, each with a replica of these sums (one worker when the
    sample-level scatters are too large to copy, see REPLICA_BYTES); the read-only tables are shared.

    ``decision_samples``: count the decisions of a seeded random subset of that many rows only
    (:mod:`nc_audit.engine.decision_sample`; ``.counter.subset`` says so). ``float32``: decide by float32
    GEMMs with the near-ties re-decided in float64 (default: where the device allows,
    :mod:`nc_audit.engine.second_pass`); a chunk with more near-ties than its blocks re-decide is
    recounted in float64 (on an accelerator: the pass, once), so the counts are always the float64 ones.
    ``keep`` (C,) bool: only the rows of those classes (--min-class-samples)."""
    ctx = ctx or DistributedContext()
    if keep is not None and decision_samples is not None:
        raise InputError(
            "--decision-samples draws rows by their number in the split and --min-class-samples leaves "
            "rows out: use one of them"
        )
    sample = DecisionSample.draw(info.num_samples, decision_samples, decision_seed)
    main = _second_pass(
        info, stats, head, device, tracker, chunk_rows, sample_stats, projection, ctx, sample, float32, keep
    )
    if not main.recounts_chunks and main.spilled_rows:  # this rank's rows, before the ranks merge
        exact = _second_pass(
            info, stats, head, device, tracker, chunk_rows, None, None, ctx, sample, False, keep
        )
        main.counter = exact.counter
    if sample is not None:
        main.counter.subset = sample.describe()
    return reduce_over_ranks(main, ctx)


def _second_pass(
    info: SplitInfo,
    stats: ClassStats,
    head: Head,
    device: torch.device,
    tracker: Tracker,
    chunk_rows: int | None,
    sample_stats: SampleLevelStats | None,
    projection: WithinProjection | None,
    ctx: DistributedContext,
    sample: DecisionSample | None,
    float32: bool | None,
    keep: torch.Tensor | None,
) -> SecondPass:
    """One second pass over this rank's rows, its workers merged (not yet the ranks)."""
    present = stats.present.nonzero().flatten()  # (C',)
    counter = DecisionCounter(
        class_means=stats.class_means[present],
        candidate_classes=present,
        head_weight=head.weight.to(device),
        head_bias=head.bias.to(device) if head.bias is not None else None,
    )
    validator = RowValidator(info, head.num_classes)
    main = SecondPass(
        counter,
        stats.global_mean.to(device),
        sample_stats,
        projection,
        decision_sample=sample,
        float32=float32,
    )
    workers = worker_count(device)
    if sample_stats is not None and sample_stats.nbytes > REPLICA_BYTES:
        workers = 1
    parts = [main] + [main.replica() for _ in range(workers - 1)]
    description = f"decisions {Path(info.path).name}"
    updates = [part.update_rows for part in parts]
    stream(info, chunk_rows, ctx, validator, tracker, description, updates, with_rows=True, keep=keep)
    merge_all(parts)
    validator.nonfinite_rows = main.nonfinite_rows
    validator.raise_if_bad(ctx)
    return main
