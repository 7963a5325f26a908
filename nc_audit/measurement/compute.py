"""Metrics from what the streaming passes produced: every class-level metric of docs/METRICS.md, batched over
checkpoints (one batched SVD for NC1, one batched eigvalsh for every C×C Gram); and the metrics of features
held in memory through those same passes (:func:`metrics_from_arrays`)."""

from __future__ import annotations

import torch

from nc_audit.core.class_stats import ClassStats
from nc_audit.core.errors import InputError
from nc_audit.engine.accumulators import DecisionCounter
from nc_audit.io.checkpoints.load import Head
from nc_audit.io.dumps.memory import MemoryRows
from nc_audit.measurement.collect import run_passes
from nc_audit.measurement.degenerate import INFORMATION_KEYS, Degenerate, degenerate_classes
from nc_audit.measurement.memory import NO_FILE, memory_inputs
from nc_audit.measurement.options import MeasureOptions
from nc_audit.metrics.collapse import (
    MEANS_DEPENDENT,
    centred_means,
    collapse_metrics,
    equiangular,
    maxangle,
    means_coincide,
    nc1_batched,
)
from nc_audit.metrics.information import InformationResult, routed_information
from nc_audit.metrics.routes import CLASS_BUDGET_BYTES, ClassRoutes, plan_routes
from nc_audit.metrics.tiled import tiled_angles


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
    # zero head rows / zero centred means never enter a cosine Gram (measurement/degenerate.py)
    degenerate = [degenerate_classes(stats, head.weight) for stats, head, _ in items]
    clean = [index for index, found in enumerate(degenerate) if not found.excluded]
    by_index: dict[int, InformationResult] = {}
    if clean:
        by_index.update(zip(clean, routed_information(W[clean], M[clean], routes), strict=True))
    for index, found in enumerate(degenerate):
        if found.excluded:
            by_index[index] = _kept_information(W[index], M[index], found, routes)
    information = [by_index[index] for index in range(len(items))]
    results = []
    for index, (sub, (_, _, counter)) in enumerate(zip(subsets, items, strict=True)):
        metrics: dict[str, float | None] = dict(collapse_metrics(sub, W[index], nc1_all[index], routes))
        metrics["nc4"] = counter.nc4
        metrics.update(information[index].metrics)
        found = degenerate[index]
        if found.zero_head:
            metrics.update(_cosines(W[index][found.mask(found.zero_head, W.device)], "head", routes))
        if found.zero_means:
            metrics.update(_cosines(M[index][found.mask(found.zero_means, M.device)], "means", routes))
        if means_coincide(sub):  # zero between-class spread: undefined, never a "perfect collapse"
            metrics.update(dict.fromkeys(MEANS_DEPENDENT))
        results.append(metrics)
    return results, routes, information


def _kept_information(
    W: torch.Tensor, M: torch.Tensor, found: Degenerate, routes: ClassRoutes
) -> InformationResult:
    """The information metrics over the kept classes only (W, M: (C_p, d)); null with fewer than 2."""
    keep = found.mask(found.excluded, W.device)  # (C_p,)
    if int(keep.sum()) < 2:
        return InformationResult(dict.fromkeys(INFORMATION_KEYS))
    return routed_information(W[keep][None], M[keep][None], routes)[0]


def _cosines(X: torch.Tensor, side: str, routes: ClassRoutes) -> dict[str, float | None]:
    """The NC2 cosine metrics of the non-zero rows X (n, d) of one side (tiled where the routes say so);
    null with fewer than 2 rows."""
    if X.shape[0] < 2:
        return {f"nc2_equiangular_{side}": None, f"nc2_maxangle_{side}": None}
    if routes.pairwise == "tiled" and routes.tile is not None:
        equiangular_value, maxangle_value = tiled_angles(X.to(torch.float64), routes.tile)
    else:
        equiangular_value, maxangle_value = equiangular(X), maxangle(X)
    return {f"nc2_equiangular_{side}": equiangular_value, f"nc2_maxangle_{side}": maxangle_value}


def metrics_from_arrays(
    features: torch.Tensor, labels: torch.Tensor, head: Head
) -> tuple[dict[str, float | None], DecisionCounter]:
    """Metrics of in-memory features (training loops, interpolation) with the decision counts: the
    passes of a measurement over the rows held in memory (:func:`nc_audit.measurement.collect.run_passes`,
    on the features' device), then :func:`batched_class_level` — what ``measure`` runs on a dump."""
    features = features.detach()
    if features.dim() != 2 or features.shape[1] == 0:
        raise InputError(f"features must be (N, d) with d >= 1, got shape {tuple(features.shape)}")
    if labels.numel() == 0 or torch.unique(labels.detach()).numel() < 2:
        raise InputError("Neural Collapse metrics need samples of at least 2 classes")
    head = Head(
        head.name,
        head.weight.detach().to("cpu", torch.float64),
        None if head.bias is None else head.bias.detach().to("cpu", torch.float64),
    )
    rows = MemoryRows.of_tensors(features, labels)
    inputs = memory_inputs("features", {None: rows}, head, NO_FILE)
    collected = run_passes(inputs, MeasureOptions(), features.device)
    metrics = batched_class_level([(collected.stats, head, collected.counter)], [collected.nc1])[0]
    return metrics[0], collected.counter
