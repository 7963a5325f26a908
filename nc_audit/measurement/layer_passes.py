"""The streaming passes of ``--layers``: every selected layer's input accumulated in one forward pass.

Each forward pass over the measured split runs the model once per batch with forward pre-hooks on the
selected layers (nc_audit.models.layer_taps) and the head's own feature tap (the features ``measure``
measures), and feeds every layer's pooled input to its own first-pass accumulator
(:class:`nc_audit.engine.first_pass.ShiftedSums`, float64, the d×d within-class scatter kept: mergeable
across workers and ranks as the dump path's). As in :func:`nc_audit.engine.passes.accumulate_stats`,
when one shift would cost σ_c² digits (nearly collapsed classes) a second forward pass centres every
class of every layer on its mean from the first.

Under torchrun each rank runs every ``world_size``-th batch (the first batch runs on every rank, which
learns the widths from it) and the ranks' accumulators merge in rank order
(:func:`nc_audit.engine.state.reduce_over_ranks`): the statistics of one process, on every rank.

Memory: every width is known after the first batch; the accumulators are allocated only when all of
them fit ``budget_bytes`` together (:func:`layer_bytes`), else InputError before any is allocated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from nc_audit.core.class_stats import ClassStats
from nc_audit.core.errors import InputError
from nc_audit.core.inputs import Inputs
from nc_audit.distributed import DistributedContext
from nc_audit.engine.blocks import block_rows
from nc_audit.engine.first_pass import ShiftedSums
from nc_audit.engine.state import reduce_over_ranks

#: One forward pass's pooled layer inputs: name → (N, width), in forward order, the head's input last.
LayerFeatures = dict[str, torch.Tensor]
#: Batches of (model inputs, labels), a fresh iterator per call (one per pass).
Batches = Callable[[], Iterable[tuple[Inputs, torch.Tensor]]]


def layer_bytes(width: int, num_classes: int, device: torch.device) -> int:
    """Bytes one layer's accumulator holds: the d×d scatter, the C×d sums and shifts, and its two reused
    float64 work blocks (engine/blocks.py), all 8-byte floats."""
    return 8 * (width * width + 2 * num_classes * width + 2 * block_rows(width, device) * width)


def check_budget(widths: dict[str, int], num_classes: int, device: torch.device, budget_bytes: int) -> None:
    """InputError, before anything is allocated, when the accumulators of all layers exceed the budget."""
    need = sum(layer_bytes(width, num_classes, device) for width in widths.values())
    if need > budget_bytes:
        widest = sorted(widths.items(), key=lambda item: -item[1])[:3]
        shown = ", ".join(f"{name} ({width})" for name, width in widest)
        raise InputError(
            f"--layers: {len(widths)} layers need {need / 2**20:.1f} MiB of float64 statistics "
            f"(8·width² + 16·C·width + work blocks each; widest: {shown}), over the memory budget of "
            f"{budget_bytes / 2**20:.1f} MiB; measure fewer or narrower layers (--layers NAME,NAME)"
        )


@dataclass(frozen=True)
class LayerStats:
    """What the passes produced: each layer's ClassStats (with the scatter), in forward order."""

    stats: dict[str, ClassStats]
    passes: int


def _check_labels(labels: torch.Tensor, num_classes: int, where: str) -> None:
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise InputError(
            f"{where}: labels go from {int(labels.min())} to {int(labels.max())}, outside the head's "
            f"0..{num_classes - 1}"
        )


def _one_pass(
    batches: Batches,
    forward: Callable[[Inputs], LayerFeatures],
    num_classes: int,
    device: torch.device,
    budget_bytes: int,
    where: str,
    shifts: dict[str, torch.Tensor] | None,
    ctx: DistributedContext,
) -> dict[str, ShiftedSums]:
    accumulators: dict[str, ShiftedSums] | None = None
    for index, (inputs, batch_labels) in enumerate(batches()):
        mine = index % ctx.world_size == ctx.rank
        if not mine and accumulators is not None:
            continue  # another rank's batch
        labels = torch.as_tensor(batch_labels).reshape(-1).to(torch.int64)
        _check_labels(labels, num_classes, where)
        found = forward(inputs)
        if accumulators is None:  # the widths are known after the first batch: budget, then allocate
            widths = {name: int(features.shape[1]) for name, features in found.items()}
            check_budget(widths, num_classes, device, budget_bytes)
            accumulators = {
                name: ShiftedSums(num_classes, width, device, True, None if shifts is None else shifts[name])
                for name, width in widths.items()
            }
        if not mine:
            continue
        for name, accumulator in accumulators.items():
            accumulator.update(found[name], labels)
    if accumulators is None:
        raise InputError(f"{where}: no samples to measure the layers on")
    accumulators = {name: reduce_over_ranks(item, ctx) for name, item in accumulators.items()}
    for name, accumulator in accumulators.items():
        if accumulator.nonfinite_rows:
            raise InputError(
                f"{where}: the input of layer {name!r} holds NaN or Inf in {accumulator.nonfinite_rows} rows"
            )
    return accumulators


def accumulate_layers(
    batches: Batches,
    forward: Callable[[Inputs], LayerFeatures],
    num_classes: int,
    device: torch.device,
    budget_bytes: int,
    where: str,
    ctx: DistributedContext | None = None,
) -> LayerStats:
    """ClassStats of every layer's input over ``batches`` (see the module docstring); ``forward`` runs
    one batch and returns the pooled inputs; ``where`` names the data in messages; ``ctx``: the ranks
    sharing the batches (default: this process alone)."""
    ctx = ctx or DistributedContext(device=device)
    first = _one_pass(batches, forward, num_classes, device, budget_bytes, where, None, ctx)
    passes = 1
    if any(accumulator.ill_conditioned() for accumulator in first.values()):
        means = {name: accumulator.class_stats().class_means for name, accumulator in first.items()}
        first = _one_pass(batches, forward, num_classes, device, budget_bytes, where, means, ctx)
        passes = 2
    stats = {name: accumulator.class_stats() for name, accumulator in first.items()}
    for name, layer in stats.items():
        if int(layer.present.sum()) < 2:
            raise InputError(f"{where}: layer {name!r} saw fewer than 2 classes; Neural Collapse needs 2")
    return LayerStats(stats, passes)
