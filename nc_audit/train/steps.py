"""One training epoch: seeded batch order, the (sharded) objective, and the optimizer steps.

Objective of a global batch of n samples split into S strided shards of n_s samples (S = the number of
DDP ranks, or ``loss_shards`` on one process):  J = Σ_s (n_s / n) · L_s,  L_s = total_loss on shard s.
For cross-entropy J is exactly the loss of the whole batch; CMA and the MIR/HDR terms are batch-level
statistics, so with S > 1 they are the size-weighted mean of per-shard values, not the value on the
whole batch. Under DDP rank r back-propagates S·(n_r/n)·L_r and DDP averages the gradients over the S
ranks, which gives ∇J; on one process with ``loss_shards`` = S the same J is built directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from nc_audit.core.formats import LOSS_KEYS
from nc_audit.core.inputs import take, to_device
from nc_audit.distributed import DistributedContext
from nc_audit.models.hooks import HeadLayer, forward_with_features
from nc_audit.train.config import FinetuneConfig
from nc_audit.train.data import MemorySplit
from nc_audit.train.losses import total_loss


@dataclass
class TrainingParts:
    """What a training step needs besides the data: models, optimizer, anchors and the run's settings."""

    model: nn.Module  # the plain model (its head gives W for MIR/HDR)
    forward_model: nn.Module  # the model to call: DDP wrapper on several ranks, else the model itself
    forward_head: str  # the head's dotted name inside forward_model
    head: HeadLayer  # an nn.Linear, or a parameter applied with F.linear
    optimizer: torch.optim.Optimizer
    anchors: torch.Tensor  # (C, d) float64 on the device
    config: FinetuneConfig
    shards: int  # S: ranks under DDP, else config.loss_shards


def _shard_losses(
    parts: TrainingParts, logits: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, shards: int
) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """(n_s, total L_s, [L_s, ce, cma, reg] detached) for each strided shard of the rows given."""
    config = parts.config
    results = []
    for s in range(shards):
        rows = slice(s, None, shards)
        if labels[rows].shape[0] == 0:  # a last batch shorter than S leaves some shards empty
            continue
        loss = total_loss(
            logits[rows],  # (n_s, C)
            labels[rows],  # (n_s,)
            features[rows],  # (n_s, d)
            parts.anchors,
            cma_weight=config.cma_weight,
            mir_weight=config.mir_weight,
            hdr_weight=config.hdr_weight,
            head_weight=parts.head.weight,
            label_smoothing=config.label_smoothing,
            regularizer_target=config.regularizer_target,
            regularizer_head=config.regularizer_head,
        )
        values = torch.stack([loss.total, loss.ce, loss.cma, loss.reg]).detach().to(torch.float64)  # (4,)
        results.append((int(labels[rows].shape[0]), loss.total, values))
    return results


def batch_objective(
    parts: TrainingParts, train: MemorySplit, batch: torch.Tensor, ctx: DistributedContext
) -> tuple[torch.Tensor, torch.Tensor]:
    """(objective to back-propagate on this rank, Σ_s n_s·[L_s, ce, cma, reg] over this rank's shards)."""
    n = int(batch.shape[0])
    local = batch[ctx.rank :: ctx.world_size] if ctx.distributed else batch  # (n_r,)
    inputs = to_device(take(train.inputs, local), ctx.device)  # (n_r, ...) or named (n_r, ...)
    labels = train.labels[local].to(ctx.device)  # (n_r,)
    logits, features = forward_with_features(parts.forward_model, inputs, parts.forward_head)
    sums = torch.zeros(len(LOSS_KEYS), dtype=torch.float64)  # (4,)
    if labels.shape[0] == 0:  # a short last batch leaves this rank nothing: join DDP with a zero gradient
        return 0.0 * (logits.sum() + features.sum()), sums
    if ctx.distributed:
        ((n_r, loss, values),) = _shard_losses(parts, logits, features, labels, 1)
        return (ctx.world_size * n_r / n) * loss, sums + n_r * values.cpu()
    shard_losses = _shard_losses(parts, logits, features, labels, parts.shards)
    for n_s, _, values in shard_losses:
        sums += n_s * values.cpu()
    if parts.shards == 1:
        return shard_losses[0][1], sums
    return torch.stack([(n_s / n) * loss for n_s, loss, _ in shard_losses]).sum(), sums


def train_epoch(
    parts: TrainingParts,
    train: MemorySplit,
    order: torch.Generator,
    ctx: DistributedContext,
    advance: Callable[[int], None],
) -> tuple[dict[str, float], int]:
    """One pass over the train split in a fresh seeded order: ({loss, ce, cma, reg} means, steps taken)."""
    N, B = train.num_samples, parts.config.batch_size
    permutation = torch.randperm(N, generator=order)  # (N,), identical on every rank
    sums = torch.zeros(len(LOSS_KEYS), dtype=torch.float64)  # (4,)
    steps = 0
    for start in range(0, N, B):
        batch = permutation[start : start + B]  # (n,)
        objective, batch_sums = batch_objective(parts, train, batch, ctx)
        parts.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        parts.optimizer.step()
        sums += batch_sums
        steps += 1
        advance(int(batch.shape[0]))
    means = ctx.all_reduce_sum(sums) / N  # (4,) sample-weighted means over the epoch
    return dict(zip(LOSS_KEYS, means.tolist(), strict=True)), steps
