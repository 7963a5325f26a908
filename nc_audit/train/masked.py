"""A short fine-tune that keeps pruning masks: Adam on the cross-entropy, pruned weights held at zero.

After every optimizer step the masked weights are multiplied by their masks again, so a pruned weight
stays exactly 0 (Adam's moments may move it in between; the multiplication undoes it). Every other
parameter trains (biases, normalisation). Seeded batch order (one generator, ``seed``); the trailing
partial batch is kept. The model is left in eval mode.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nc_audit.core.inputs import take, to_device
from nc_audit.core.progress import SilentTracker, Tracker
from nc_audit.io.data.datasets import ArrayDataset
from nc_audit.models.hooks import call_model, logits_of
from nc_audit.train.losses import classification_loss


def finetune_with_masks(
    model: nn.Module,
    train: ArrayDataset,
    masks: dict[Tensor, Tensor],
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    device: torch.device | None = None,
    tracker: Tracker | None = None,
) -> list[float]:
    """Fine-tune ``model`` on ``train`` for ``epochs``; ``masks`` maps a weight (a parameter of ``model``) to its keep-mask.
    Returns the mean training loss of every epoch."""
    tracker = tracker or SilentTracker()
    device = device or torch.device("cpu")
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    order = torch.Generator().manual_seed(seed)
    keep = [(weight, mask.to(device=weight.device, dtype=weight.dtype)) for weight, mask in masks.items()]
    losses = []
    model.train()
    with tracker.stage("fine-tune with masks", epochs, unit="epochs") as advance:
        for _ in range(epochs):
            permutation = torch.randperm(len(train), generator=order)  # (N,)
            total = 0.0
            for start in range(0, len(train), batch_size):
                index = permutation[start : start + batch_size]  # (B,)
                if index.numel() < 2 and any(
                    isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()
                ):
                    continue  # train-mode BatchNorm cannot normalise a single sample
                logits = logits_of(call_model(model, to_device(take(train.inputs, index), device)))
                loss = classification_loss(logits, train.labels[index].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    for weight, mask in keep:
                        weight.mul_(mask)
                total += float(loss.detach()) * index.numel()
            losses.append(total / len(train))
            advance(1)
    model.eval()
    return losses
