"""The streaming passes of one measurement: resolve its inputs, then run pass 1 and pass 2 over the dump
(:func:`collect`), or over splits held in memory (:func:`run_passes`, :mod:`nc_audit.measurement.memory`).

Pass 1 builds ClassStats and validates every row (labels in range, finite features); pass 2 counts the
NC4 decisions with the class means of pass 1, and carries NC1's projections and, when asked, the
sample-level sums (:mod:`nc_audit.engine.passes`). Nothing here computes a metric or renders anything.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from nc_audit.core.class_stats import ClassStats
from nc_audit.core.devices import resolve_device
from nc_audit.core.errors import InputError
from nc_audit.core.progress import SilentTracker, Tracker
from nc_audit.distributed import DistributedContext
from nc_audit.engine.accumulators import DecisionCounter, WithinProjection
from nc_audit.engine.passes import accumulate_stats, count_decisions
from nc_audit.engine.sample_stats import SampleLevelStats
from nc_audit.io.checkpoints.load import Head, load_checkpoint
from nc_audit.io.data.corpus import is_corpus
from nc_audit.io.data.datasets import splits_for_measure
from nc_audit.io.data.stream_spec import parse_stream_spec
from nc_audit.io.dumps.reader import SplitInfo, feature_magnitude, iter_chunks, read_head, scale_for
from nc_audit.io.hdf5.guard import external_allowed, external_data_allowed
from nc_audit.measurement.cache import cached_dump, errors_name_the_data
from nc_audit.measurement.class_set import ClassSet, select_classes
from nc_audit.measurement.degenerate import without_zero_samples
from nc_audit.measurement.options import MeasureOptions
from nc_audit.measurement.resolve import (
    DUMP_SUFFIXES,
    MeasureInputs,
    adapter_features,
    check_adapter_data,
    resolve_inputs,
)
from nc_audit.metrics.collapse import centred_means
from nc_audit.metrics.sample_level import SampleLevelResult, sample_level_metrics


@dataclass
class Collected:
    """What the two streaming passes over one checkpoint's features produced."""

    inputs: MeasureInputs
    stats: ClassStats
    counter: DecisionCounter
    device: torch.device
    dump: Path
    cache_hit: bool | None
    sample_level: SampleLevelResult | None = None
    nc1: float | None = None  # from the streamed WithinProjection, when pass 1 kept no scatter
    feature_scale: float = 1.0  # the power of two the features were read with (io/dumps/reader.py)
    class_set: ClassSet | None = None  # the kept classes (--min-class-samples)


def _features_of(
    source: Path | str, options: MeasureOptions, device: torch.device, tracker: Tracker
) -> tuple[Path | None, str | None, bool | None, list[str]]:
    """(dump path or None, head name, cache hit or None, notes): the dump to read, extracting
    ``options.data`` through the feature cache when asked. A feature adapter's checkpoint with the
    backbone features it was trained on as ``features`` extracts them through the adapter."""
    data, notes = options.data, []
    if data is not None and options.features is not None:
        raise InputError("pass either --features DUMP or --data NAME, not both")
    if data is None and options.features is not None and Path(source).suffix.lower() not in DUMP_SUFFIXES:
        if adapter_features(load_checkpoint(source), options.features):
            data = str(options.features)
            notes.append(
                f"{options.features} holds the backbone features this adapter was trained on: they were run "
                "through the adapter, and the adapted features measured"
            )
    if data is None:
        return options.features, options.head, None, notes
    if options.task == "next-token":
        return _next_token_features(source, data, options, device, tracker, notes)
    if is_corpus(data) and parse_stream_spec(data) is None:  # a .jsonl table is data for a classifier
        raise InputError(
            f"{data}: a corpus; measure a causal language model folder on it with --task next-token"
        )
    if Path(source).exists() and Path(source).suffix.lower() not in DUMP_SUFFIXES:
        check_adapter_data(load_checkpoint(source), data)
    splits = splits_for_measure(data, options.split)
    if options.means_split is not None and options.means_split not in splits:
        raise InputError(
            f"--means-split {options.means_split}: {data} has no such split; its splits: {', '.join(splits)}"
        )
    dump, hit = cached_dump(
        source,
        data,
        model=options.model_spec(str(device)),
        cache_dir=options.cache_dir,
        tracker=tracker,
        splits=splits,
        on_rebuild=notes.append,
    )
    head = options.head or _stored_head_name(dump)
    return dump, head, hit, notes


def _next_token_features(
    source: Path | str,
    data: str,
    options: MeasureOptions,
    device: torch.device,
    tracker: Tracker,
    notes: list[str],
) -> tuple[Path | None, str | None, bool | None, list[str]]:
    """The next-token dump of the corpus ``data`` through the causal LM folder ``source``, cached."""
    from nc_audit.measurement.next_token_cache import cached_next_token_dump
    from nc_audit.models.next_token import check_next_token_options

    check_next_token_options(options.model, options.model_args, options.head, options.split)
    dump, hit = cached_next_token_dump(
        source,
        data,
        cache_dir=options.cache_dir,
        context=options.context,
        text_column=options.text_column,
        device=str(device),
        tracker=tracker,
        on_rebuild=notes.append,
    )
    return dump, _stored_head_name(dump), hit, notes


def _stored_head_name(dump: Path) -> str:
    """The name of the head a dump nc-audit built stores (every dump it builds stores one)."""
    head = read_head(dump)
    if head is None:
        raise InputError(f"{dump}: the dump holds no /head/weight")
    return head.name


def sample_level_accumulator(
    own_split: ClassStats, num_classes: int, feature_dim: int, options: MeasureOptions, device: torch.device
) -> SampleLevelStats:
    """An empty sample-level accumulator centred on the measured split's own global mean; it keeps the
    per-class scatters (8·C·d² bytes, the exact Khatri–Rao and class-block routes) only within
    ``options.sample_budget_bytes``."""
    per_class = 8 * num_classes * feature_dim * feature_dim <= options.sample_budget_bytes
    return SampleLevelStats(own_split.global_mean, num_classes, per_class=per_class, device=device)


def collect(
    source: Path | str, options: MeasureOptions | None = None, tracker: Tracker | None = None
) -> Collected:
    """Resolve the inputs of one measurement and run its two streaming passes (see :func:`measure`);
    dumps are read only from their own file unless ``options.allow_external_data``."""
    options = options or MeasureOptions()
    with (
        external_data_allowed(options.allow_external_data or external_allowed()),
        errors_name_the_data(options.data),
    ):
        return _collect(source, options, tracker)


def _collect(source: Path | str, options: MeasureOptions, tracker: Tracker | None) -> Collected:
    progress: Tracker = tracker or SilentTracker()
    device = resolve_device(options.device)
    dump, head_name, cache_hit, notes = _features_of(source, options, device, progress)
    if options.task == "next-token" and options.data is not None and dump is not None:
        source, dump = dump, None  # the dump holds the unembedding
    inputs = resolve_inputs(source, dump, options.split, head_name, options.means_split)
    if notes:
        inputs = replace(inputs, notes=(*inputs.notes, *notes))
    ctx = DistributedContext.from_env(device)  # one process, or one rank under torchrun
    collected = run_passes(inputs, options, device, progress, ctx)
    collected.cache_hit = cache_hit
    return collected


def run_passes(
    inputs: MeasureInputs,
    options: MeasureOptions,
    device: torch.device,
    tracker: Tracker | None = None,
    ctx: DistributedContext | None = None,
) -> Collected:
    """The two streaming passes over resolved inputs — a dump's splits or splits held in memory
    (:mod:`nc_audit.measurement.memory`), read through the same chunks — with the class set, the NC1
    projection and the sample-level sums the options ask for. ``ctx``: this process alone by default."""
    progress: Tracker = tracker or SilentTracker()
    ctx = ctx or DistributedContext(device=device)
    inputs, scale = _rescaled(inputs, ctx)
    C, d = inputs.head.num_classes, inputs.head.feature_dim
    # NC1 on the measured split streams as a projection in pass 2 (N·d·C flops); held-out decisions
    # need the means split's own Σ_W, so then pass 1 keeps the full scatter.
    same_split = inputs.decisions_split == inputs.means_split

    def first_pass(
        split: SplitInfo, with_scatter: bool = True, keep: torch.Tensor | None = None
    ) -> ClassStats:
        return accumulate_stats(split, C, device, progress, options.chunk_rows, with_scatter, ctx, keep)

    stats = first_pass(inputs.means_split, with_scatter=not same_split)
    class_set = select_classes(stats, options.min_class_samples, str(inputs.means_split.path))
    keep = class_set.keep if class_set.dropped_samples else None  # rows of sparse classes left out
    if keep is not None:
        if options.sample_level:
            raise InputError(
                "--min-class-samples that leaves out classes with samples does not combine with --sample-level"
            )
        # the scatter would still hold the left-out rows: pass 1 again without them
        stats = stats.restricted_to(keep) if same_split else first_pass(inputs.means_split, True, keep)
    projection = None
    if same_split:
        projection = WithinProjection(stats.class_means, centred_means(stats.subset(stats.present)))
    sample_stats = None
    if options.sample_level:  # K_Z centres by the measured split's own mean
        own = stats if same_split else first_pass(inputs.decisions_split, with_scatter=False)
        sample_stats = sample_level_accumulator(own, C, d, options, device)
    second = count_decisions(
        inputs.decisions_split,
        stats,
        _scaled_head(inputs.head, scale),
        device,
        progress,
        options.chunk_rows,
        sample_stats,
        projection,
        ctx,
        decision_samples=options.decision_samples,
        decision_seed=options.decision_seed,
        keep=keep,
    )
    result = None
    if second.sample_stats is not None:
        decisions = inputs.decisions_split
        sums = second.sample_stats.sums()
        result = sample_level_metrics(
            sums,
            inputs.head.weight.to(device),
            estimator=options.estimator,
            budget_bytes=options.sample_budget_bytes,
            chunks=lambda: iter_chunks(decisions, options.chunk_rows),
        )
        without_zero_samples(result, sums.dual_gram, sums.num_samples)  # measurement/degenerate.py
    nc1 = second.projection.nc1() if second.projection is not None else None
    dump_path = Path(inputs.decisions_split.path)
    return Collected(inputs, stats, second.counter, device, dump_path, None, result, nc1, scale, class_set)


def _rescaled(inputs: MeasureInputs, ctx: DistributedContext) -> tuple[MeasureInputs, float]:
    """The inputs with both splits read at one power-of-two scale (1 for ordinary magnitudes): float64
    features of extreme magnitude would overflow or underflow their squares (io/dumps/reader.py, scale_for).
    Each rank looks at the first of its own rows; the ranks agree on the largest magnitude."""
    if np.dtype(inputs.means_split.feature_dtype).itemsize < 8:  # the same on every rank
        return inputs, 1.0
    magnitude = feature_magnitude(inputs.means_split, ctx.row_range(inputs.means_split.num_samples))
    if ctx.distributed:
        gathered = ctx.gather(torch.tensor([magnitude], dtype=torch.float64))
        magnitude = max(float(value) for value in gathered)
    scale = scale_for(magnitude)
    if scale == 1.0:
        return inputs, scale
    means = replace(inputs.means_split, scale=scale)
    same = inputs.decisions_split == inputs.means_split
    decisions = means if same else replace(inputs.decisions_split, scale=scale)
    return replace(inputs, means_split=means, decisions_split=decisions), scale


def _scaled_head(head: Head, scale: float) -> Head:
    """The head for features multiplied by ``scale``: argmax(W (s h) + s b) = argmax(W h + b)."""
    if scale == 1.0 or head.bias is None:
        return head
    return Head(head.name, head.weight, head.bias * scale)
