"""Metrics from what the streaming passes produced: every class-level metric of docs/METRICS.md, batched over
checkpoints (one batched SVD for NC1, one batched eigvalsh for every C×C Gram)."""

from __future__ import annotations

import torch

from nc_audit.core.class_stats import ClassStats
from nc_audit.core.errors import InputError
from nc_audit.engine.accumulators import DecisionCounter
from nc_audit.io.checkpoints import Head
from nc_audit.metrics.collapse import (
    MEANS_DEPENDENT,
    centred_means,
    collapse_metrics,
    means_coincide,
    nc1_batched,
)
from nc_audit.metrics.information import InformationResult, routed_information
from nc_audit.metrics.routes import CLASS_BUDGET_BYTES, ClassRoutes, plan_routes


def compute_metrics(stats: ClassStats, head: Head, counter: DecisionCounter) -> dict[str, float | None]:
    """Every class-level metric of docs/METRICS.md from the two passes' results, over the present classes."""
    return batched_metrics([(stats, head, counter)])[0]


def batched_metrics(
    items: list[tuple[ClassStats, Head, DecisionCounter]],
    nc1_values: list[float | None] | None = None,
    route: str = "auto",
    budget_bytes: int = CLASS_BUDGET_BYTES,
) -> list[dict[str, float | None]]:
    """Metrics of many checkpoints (same C and d) at once: NC1 through one batched SVD, the Gram entropies
    through ONE batched eigvalsh of all C×C matrices on the dense route (``route``, see
    :func:`nc_audit.metrics.routes.plan_routes`); the rest are cheap per-checkpoint reductions."""
    return batched_class_level(items, nc1_values, route, budget_bytes)[0]


def batched_class_level(
    items: list[tuple[ClassStats, Head, DecisionCounter]],
    nc1_values: list[float | None] | None = None,
    route: str = "auto",
    budget_bytes: int = CLASS_BUDGET_BYTES,
) -> tuple[list[dict[str, float | None]], ClassRoutes, list[InformationResult]]:
    """:func:`batched_metrics` with the routes it took and each checkpoint's information result (the
    SLQ error bars and probe counts a report shows)."""
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
    routes = plan_routes(int(W.shape[1]), int(W.shape[2]), len(items), route, budget_bytes)
    information = routed_information(W, M, routes)
    results = []
    for index, (sub, (_, _, counter)) in enumerate(zip(subsets, items, strict=True)):
        metrics: dict[str, float | None] = collapse_metrics(sub, W[index], nc1_all[index], routes)
        metrics["nc4"] = counter.nc4
        metrics.update(information[index].metrics)
        if means_coincide(sub):  # zero between-class spread: undefined, never a "perfect collapse"
            metrics.update(dict.fromkeys(MEANS_DEPENDENT))
        results.append(metrics)
    return results, routes, information


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
