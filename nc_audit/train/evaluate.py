"""Per-epoch measurements: train-split metrics (nc1, mir, hdr, accuracy) and test accuracy.

Each rank runs the model, without gradients and in eval mode, over its contiguous slice of a split;
train features are gathered (in order) to every rank and measured with ``metrics_from_arrays`` on rank
0, test decisions are counted per rank and summed. With one process the slice is the whole split.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from nc_audit.core.errors import InputError
from nc_audit.core.inputs import to_device
from nc_audit.distributed import DistributedContext
from nc_audit.io.checkpoints.load import Head
from nc_audit.measurement.compute import metrics_from_arrays
from nc_audit.models.hooks import find_head_module, forward_with_features
from nc_audit.train.data import EvalSplit, TrainData


class DivergedError(InputError):
    """The model's features or head became NaN or infinite: the run diverged (the loop names the epoch)."""


#: The metrics each history line records (docs/METRICS.md keys), besides losses and accuracies.
RECORDED_METRICS = ("nc1", "mir", "hdr")


def current_head(model: nn.Module, head_name: str) -> Head:
    """The model's head now, as float64 W (C, d) and b (C,) for the metric kernels."""
    _, module = find_head_module(model, head_name)
    bias = None if module.bias is None else module.bias.detach().to(torch.float64)
    return Head(head_name, module.weight.detach().to(torch.float64), bias)


def features_in_order(
    model: nn.Module, head_name: str, split: EvalSplit, rows: tuple[int, int], device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(features (n, d), logits (n, C), labels (n,)) chunk by chunk over ``rows``, without gradients."""
    with torch.no_grad():
        for inputs, labels in split.chunks(rows):
            logits, features = forward_with_features(model, to_device(inputs, device), head_name)
            yield features, logits, labels.to(device)


def _train_metrics(
    model: nn.Module, head_name: str, data: TrainData, ctx: DistributedContext
) -> dict[str, Any] | None:
    """nc1, mir, hdr and accuracy of the train split (rank 0; None elsewhere)."""
    rows = ctx.row_range(data.train.num_samples)
    batches = list(features_in_order(model, head_name, data.train, rows, ctx.device))
    d = current_head(model, head_name).feature_dim
    features = torch.cat([f for f, _, _ in batches]) if batches else torch.empty(0, d, device=ctx.device)
    labels = torch.cat([y for _, _, y in batches]) if batches else torch.empty(0, dtype=torch.long)
    features = ctx.gather_rows(features)  # (N, d), in the split's order
    labels = ctx.gather_rows(labels.to(ctx.device))  # (N,)
    head = current_head(model, head_name)  # every rank holds the gathered rows: all raise together
    if not (bool(torch.isfinite(features).all()) and bool(torch.isfinite(head.weight).all())):
        raise DivergedError("the model's features or head hold NaN or Inf values")
    if not ctx.is_main:
        return None
    metrics, counter = metrics_from_arrays(features, labels, head)
    return {"train_accuracy": counter.accuracy, **{key: metrics.get(key) for key in RECORDED_METRICS}}


def _test_accuracy(
    model: nn.Module, head_name: str, data: TrainData, ctx: DistributedContext
) -> float | None:
    """Share of test samples whose argmax logit is the label (None without a test split)."""
    if data.test is None:
        return None
    counts = torch.zeros(2, dtype=torch.int64)  # correct, seen
    for _, logits, labels in features_in_order(
        model, head_name, data.test, ctx.row_range(data.test.num_samples), ctx.device
    ):
        counts += torch.tensor([int((logits.argmax(1) == labels).sum()), int(labels.shape[0])])
    correct, seen = ctx.all_reduce_sum(counts).tolist()
    return correct / seen if seen else None


def evaluate(
    model: nn.Module, head_name: str, data: TrainData, ctx: DistributedContext
) -> dict[str, Any] | None:
    """The measurements of one history line (rank 0; None on other ranks). Leaves the model in train mode."""
    model.eval()
    try:
        train = _train_metrics(model, head_name, data, ctx)
        test_accuracy = _test_accuracy(model, head_name, data, ctx)
    finally:
        model.train()
    if train is None:
        return None
    return {"train_accuracy": train.pop("train_accuracy"), "test_accuracy": test_accuracy, **train}
