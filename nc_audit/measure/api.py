"""`measure`: from a checkpoint and a feature dump to a Report (the library's main entry point).

Two streaming passes over the dump (DESIGN.md, Scale): the first builds ClassStats and validates every
row (labels in range, finite features); the second counts NC4 decisions with the class means of the
first. Metrics are pure functions of those statistics and the head; nothing here renders anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nc_audit.measure.describe import build_notes, conventions
from nc_audit.distributed import DistributedContext
from nc_audit.core.errors import InputError
from nc_audit.metrics.collapse import (
    DecisionCounter,
    WithinProjection,
    centred_means,
    collapse_metrics,
    nc1_batched,
)
from nc_audit.metrics.information import class_level_information, nc_targets, sample_level_targets
from nc_audit.metrics.sample_level import SampleLevelResult, SampleLevelStats, sample_level_metrics
from nc_audit.engine.passes import accumulate_stats, count_decisions
from nc_audit.core.progress import SilentTracker, Tracker
from nc_audit.report.model import Report
from nc_audit.measure.resolve import Sources, resolve_device, resolve_sources
from nc_audit.measure.cache import cached_dump
from nc_audit.io.checkpoints import Head
from nc_audit.io.dumps import iter_chunks, read_attrs, read_head
from nc_audit.core.class_stats import ClassStats

#: Memory the sample-level per-class scatters (8·C·d² bytes) may take before SLQ takes over.
SAMPLE_BUDGET_BYTES = 2**30


def compute_metrics(stats: ClassStats, head: Head, counter: DecisionCounter) -> dict[str, float | None]:
    """Every class-level metric of METRICS.md from the two passes' results, over the present classes."""
    return batched_metrics([(stats, head, counter)])[0]


def batched_metrics(
    items: list[tuple[ClassStats, Head, DecisionCounter]], nc1_values: list[float | None] | None = None
) -> list[dict[str, float | None]]:
    """Metrics of many checkpoints (same C and d) at once: NC1 through one batched SVD, the Gram entropies
    through ONE batched eigvalsh of all C×C matrices; the rest are cheap per-checkpoint reductions."""
    subsets = [stats.subset(stats.present) for stats, _, _ in items]
    device = subsets[0].sums.device
    W = torch.stack([head.weight.to(device)[stats.present] for stats, head, _ in items])  # (B, C, d)
    M = torch.stack([centred_means(sub) for sub in subsets])  # (B, C, d)
    nc1_all = list(nc1_values or [None] * len(items))
    missing = [index for index, value in enumerate(nc1_all) if value is None]
    if missing:  # checkpoints whose pass 1 kept the scatter: NC1 through one batched SVD
        Sigma_W = torch.stack([subsets[index].within_cov for index in missing])  # (B', d, d)
        for index, value in zip(missing, nc1_batched(M[missing], Sigma_W).tolist(), strict=True):
            nc1_all[index] = value
    information = class_level_information(W, M)
    results = []
    for index, (sub, (_, _, counter)) in enumerate(zip(subsets, items, strict=True)):
        metrics: dict[str, float | None] = collapse_metrics(sub, W[index], nc1_value=nc1_all[index])
        metrics["nc4"] = counter.nc4
        metrics.update(information[index])
        results.append(metrics)
    return results


def metrics_from_arrays(
    features: torch.Tensor, labels: torch.Tensor, head: Head
) -> tuple[dict[str, float | None], DecisionCounter]:
    """Metrics of in-memory features (training loops, interpolation): one batch, same kernels as measure."""
    features = features.detach()
    as64 = {"dtype": torch.float64, "device": features.device}
    head = Head(
        head.name,
        head.weight.detach().to(**as64),
        None if head.bias is None else head.bias.detach().to(**as64),
    )
    stats = ClassStats.from_batch(features, labels, head.num_classes)
    if int(stats.present.sum()) < 2:
        raise InputError("Neural Collapse metrics need samples of at least 2 classes")
    present = stats.present.nonzero().flatten()
    counter = DecisionCounter(
        stats.class_means[present],
        present,
        head.weight.to(stats.sums.device),
        None if head.bias is None else head.bias.to(stats.sums.device),
    )
    counter.update(features, labels)
    return compute_metrics(stats, head, counter), counter


@dataclass
class Collected:
    """What the two streaming passes over one checkpoint's features produced."""

    sources: Sources
    stats: ClassStats
    counter: DecisionCounter
    device: torch.device
    dump: Path
    cache_hit: bool | None
    sample_level: SampleLevelResult | None = None
    nc1: float | None = None  # from the streamed WithinProjection, when pass 1 kept no scatter


def collect(
    source: Path | str,
    *,
    features: Path | str | None = None,
    data: str | None = None,
    split: str | None = None,
    head: str | None = None,
    model: str | None = None,
    cache_dir: Path | None = None,
    device: str = "auto",
    chunk_rows: int | None = None,
    tracker: Tracker | None = None,
    sample_level: bool = False,
    estimator: str = "auto",
    budget_bytes: int = SAMPLE_BUDGET_BYTES,
) -> Collected:
    """Resolve the sources of one measurement and run its two streaming passes (see :func:`measure`)."""
    tracker = tracker or SilentTracker()
    target_device = resolve_device(device)
    cache_hit = None
    if data is not None:
        if features is not None:
            raise InputError("pass either --features DUMP or --data NAME, not both")
        features, cache_hit = cached_dump(
            source,
            data,
            cache_dir=cache_dir,
            model_spec=model,
            head=head,
            device=str(target_device),
            tracker=tracker,
        )
        head = head or read_head(features).name
    sources = resolve_sources(source, features, split, head)
    # NC1 on the measured split streams as a projection in pass 2 (N·d·C flops); held-out decisions
    # need the means split's own Σ_W, so then pass 1 keeps the full scatter.
    same_split = sources.decisions_split is sources.means_split
    ctx = DistributedContext.from_env(target_device)  # one process, or one rank under torchrun
    stats = accumulate_stats(
        sources.means_split,
        sources.head.num_classes,
        target_device,
        tracker,
        chunk_rows,
        with_scatter=not same_split,
        ctx=ctx,
    )
    projection = None
    if same_split:
        projection = WithinProjection(stats.class_means, centred_means(stats.subset(stats.present)))
    sample_stats = None
    if sample_level:
        own = stats
        if sources.decisions_split is not sources.means_split:  # K_Z centres by the measured split's own mean
            own = accumulate_stats(
                sources.decisions_split, sources.head.num_classes, target_device, tracker, chunk_rows, ctx=ctx
            )
        C, d = sources.head.num_classes, sources.head.feature_dim
        per_class = 8 * C * d * d <= budget_bytes
        sample_stats = SampleLevelStats(own.global_mean, C, per_class=per_class, device=target_device)
    counter = count_decisions(
        sources.decisions_split,
        stats,
        sources.head,
        target_device,
        tracker,
        chunk_rows,
        sample_stats,
        projection,
        ctx=ctx,
    )
    result = None
    if sample_stats is not None:
        info = sources.decisions_split
        result = sample_level_metrics(
            sample_stats,
            sources.head.weight.to(target_device),
            estimator=estimator,
            budget_bytes=budget_bytes,
            chunks=lambda: iter_chunks(info, chunk_rows),
        )
    nc1_value = projection.nc1() if projection is not None else None
    return Collected(
        sources,
        stats,
        counter,
        target_device,
        Path(sources.decisions_split.path),
        cache_hit,
        result,
        nc1_value,
    )


def build_report(collected: Collected, metrics: dict[str, float | None]) -> Report:
    """The Report of one measurement from its passes and its metrics."""
    sources, stats = collected.sources, collected.stats
    sub = stats.subset(stats.present)
    C, d = sub.num_classes, sub.feature_dim
    targets = nc_targets(C)
    notes = build_notes(stats, C, d, sources.head, metrics)
    if collected.sample_level is not None:
        metrics = {**metrics, **collected.sample_level.metrics}
        targets.update(sample_level_targets(C))
        notes += collected.sample_level.notes
    return Report(
        checkpoint=sources.head_origin,
        features={
            "path": str(sources.decisions_split.path),
            "split": sources.decisions_split.split or "all",
            "num_samples": sources.decisions_split.num_samples,
            "feature_dim": d,
            "num_classes": C,
            "means_split": sources.means_split.split or "all",
            "means_samples": sub.num_samples,
            "dtype": sources.decisions_split.feature_dtype,
        },
        conventions=conventions(sources.head, sources.means_split, sources.decisions_split),
        metrics=metrics,
        targets=targets,
        notes=notes,
        details=_details(collected),
        step=sources.head_origin.get("step"),
    )


def measure(source: Path | str, **options: Any) -> Report:
    """Measure Neural Collapse and matrix information of one checkpoint (or a dump that holds its head).

    ``source`` is a checkpoint (with ``features=DUMP``, or ``data=NAME``: a dataset name or file,
    extracted on the fly into the feature cache and reused) or a dump with ``/head``. Other options:
    ``split`` (the split for the decisions, NC4; class means come from ``train`` when there is one —
    Papyan's protocol), ``head``, ``model`` (package.module:factory), ``cache_dir``, ``device``
    ('auto' | 'cpu' | 'cuda'), ``chunk_rows``, ``tracker`` (progress).
    """
    collected = collect(source, **options)
    metrics = batched_metrics(
        [(collected.stats, collected.sources.head, collected.counter)], [collected.nc1]
    )[0]
    return build_report(collected, metrics)


def _details(collected: Collected) -> dict:
    counter = collected.counter
    details: dict = {
        "accuracy": counter.accuracy,
        "ncc_accuracy": counter.ncc_accuracy,
        "device": str(collected.device),
    }
    if collected.sample_level is not None:
        result = collected.sample_level
        details["sample_level"] = {
            "route": result.route,
            "interval_95": result.interval,
            "probes": result.probes,
        }
    if collected.cache_hit is not None:
        details["feature_cache"] = {"path": str(collected.dump), "hit": collected.cache_hit}
        details["dataset"] = read_attrs(collected.dump).get("dataset")
    return details
