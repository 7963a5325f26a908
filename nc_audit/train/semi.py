"""Semi-supervised training from scratch: FixMatch steps (nc_audit.train.fixmatch) on a few labels per class.

Every step takes B labeled samples (weak view) and μB unlabeled samples (weak and strong views,
nc_audit.train.augment), each drawn from its own seeded stream of shuffled passes (a pass that runs out
continues into the next shuffle, so every batch is full — BatchNorm never sees a short one). Optimiser
as in FixMatch: SGD with Nesterov momentum 0.9, weight decay, lr·cos(7πk / 16K) at step k of K.
``unlabeled_weight`` 0 trains on the labeled batch alone (the supervised baseline). Seeds: the model's
initialisation is ``torch.manual_seed(seed)``; batch order and augmentations come from two generators
derived from ``seed``. The model is returned in eval mode with per-step statistics of the mask.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nc_audit.core.errors import InputError
from nc_audit.core.progress import SilentTracker, Tracker
from nc_audit.models.registry import build_model
from nc_audit.train.augment import STRONG, WEAK
from nc_audit.train.fixmatch import fixmatch_step
from nc_audit.train.regularizer import Head, RegularizerForm, Target


@dataclass(frozen=True)
class SemiRecipe:
    """The settings of one semi-supervised run."""

    steps: int = 2000
    batch_size: int = 32
    unlabeled_ratio: int = 7
    threshold: float = 0.95
    unlabeled_weight: float = 1.0
    mir_weight: float = 0.0
    hdr_weight: float = 0.0
    regularizer_target: Target = "nc"
    regularizer_head: Head = "detached"
    lr: float = 0.03
    momentum: float = 0.9
    weight_decay: float = 5e-4

    def validate(self) -> None:
        for name in ("steps", "batch_size", "unlabeled_ratio"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not 0.0 <= self.threshold <= 1.0:
            raise InputError(f"the confidence threshold must lie in [0, 1], got {self.threshold}")
        if (
            min(self.unlabeled_weight, self.mir_weight, self.hdr_weight, self.weight_decay) < 0
            or self.lr <= 0
        ):
            raise InputError("weights and weight decay must be non-negative and lr positive")
        RegularizerForm(
            self.mir_weight, self.hdr_weight, self.regularizer_target, self.regularizer_head
        ).validate()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _seed(seed: int, purpose: int) -> int:
    return int(np.random.SeedSequence([seed, purpose]).generate_state(1, dtype=np.uint32)[0])


def cycling_batches(n: int, batch: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Endless full batches of indices 0..n−1: shuffled passes, each continuing into the next shuffle."""
    pending = torch.empty(0, dtype=torch.long)
    while True:
        while pending.numel() < batch:
            pending = torch.cat([pending, torch.randperm(n, generator=generator)])
        yield pending[:batch]
        pending = pending[batch:]


def train_semi_supervised(
    record: dict[str, Any],
    labeled: tuple[Tensor, Tensor],
    unlabeled: Tensor,
    recipe: SemiRecipe,
    seed: int,
    *,
    unlabeled_labels: Tensor | None = None,
    tracker: Tracker | None = None,
    description: str = "train",
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``record``'s model from scratch on ``labeled`` (inputs, labels) and ``unlabeled`` inputs.

    Returns (model in eval mode, statistics of the last 10% of steps: the share of unlabeled samples
    above the threshold, and — when ``unlabeled_labels`` are given, for monitoring only — the accuracy
    of the pseudo-labels that passed it)."""
    recipe.validate()
    tracker = tracker or SilentTracker()
    inputs, labels = labeled
    torch.manual_seed(seed)
    model = build_model(record)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay, nesterov=True)  # fmt: skip
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: math.cos(7 * math.pi * k / (16 * recipe.steps))
    )
    order = torch.Generator().manual_seed(_seed(seed, 0))
    views = torch.Generator().manual_seed(_seed(seed, 1))
    labeled_batches = cycling_batches(labels.shape[0], min(recipe.batch_size, labels.shape[0]), order)
    unlabeled_batches = cycling_batches(unlabeled.shape[0], recipe.batch_size * recipe.unlabeled_ratio, order)
    tail = max(1, recipe.steps // 10)
    passed = seen = correct = 0
    model.train()
    with tracker.stage(description, recipe.steps, unit="steps") as advance:
        for step in range(recipe.steps):
            index = next(labeled_batches)
            weak = strong = inputs[:0]
            if recipe.unlabeled_weight > 0.0:
                chosen = next(unlabeled_batches)
                weak, strong = WEAK(unlabeled[chosen], views), STRONG(unlabeled[chosen], views)
            result = fixmatch_step(model, WEAK(inputs[index], views), labels[index], weak, strong,
                                   threshold=recipe.threshold, unlabeled_weight=recipe.unlabeled_weight,
                                   mir_weight=recipe.mir_weight, hdr_weight=recipe.hdr_weight,
                                   regularizer_target=recipe.regularizer_target,
                                   regularizer_head=recipe.regularizer_head)  # fmt: skip
            optimizer.zero_grad(set_to_none=True)
            result.total.backward()
            optimizer.step()
            schedule.step()
            if step >= recipe.steps - tail and recipe.unlabeled_weight > 0.0:
                passed += int(result.mask.sum())
                seen += int(result.mask.numel())
                if unlabeled_labels is not None:
                    truth = unlabeled_labels[chosen][result.mask]
                    correct += int((result.pseudo_labels[result.mask] == truth).sum())
            advance(1)
    stats = {
        "mask_rate": passed / seen if seen else None,
        "pseudo_label_accuracy": correct / passed if passed and unlabeled_labels is not None else None,
    }
    return model.eval(), stats
