"""Training a built-in model from scratch with one plain supervised recipe (the sample run, the studies).

The recipe (docs: README, "The sample trajectory"): SGD with momentum, a cosine learning-rate schedule over
all epochs (stepped once per epoch), weight decay on every parameter, a fixed batch size, and a fresh
seeded order every epoch. ``drop_last`` skips the trailing partial batch of each epoch: with BatchNorm a
3-sample last batch (1347 digits = 21·64 + 3) is normalised with its own statistics and keeps the
network from collapsing (measured; see the README). The loss is the cross-entropy with optional label
smoothing (:func:`nc_audit.train.losses.classification_loss`), plus, when given, the MIR/HDR batch
regulariser in one of its forms (:mod:`nc_audit.train.regularizer`; the regulariser study).

Seeds: ``torch.manual_seed(seed)`` right before the model is built (its initialisation), and a separate
generator seeded with ``seed`` for the batch order. Same seed, same thread settings → same floats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from nc_audit.core.errors import InputError
from nc_audit.core.inputs import take
from nc_audit.core.progress import SilentTracker, Tracker
from nc_audit.io.data.datasets import ArrayDataset
from nc_audit.models.hooks import find_head_module, forward_with_features
from nc_audit.models.registry import build_model
from nc_audit.train.losses import classification_loss
from nc_audit.train.ranges import LABEL_SMOOTHING
from nc_audit.train.regularizer import RegularizerForm, regulariser_of

#: Called after every epoch with (epoch, model, mean training loss of the epoch); the model is in train
#: mode and must be left so.
EpochHook = Callable[[int, nn.Module, float], None]


@dataclass(frozen=True)
class Recipe:
    """The settings of a from-scratch run; :meth:`validate` checks them (InputError, one line)."""

    epochs: int = 300
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-3
    batch_size: int = 64
    drop_last: bool = True
    label_smoothing: float = 0.0

    def validate(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if not (self.lr > 0.0 and 0.0 <= self.momentum < 1.0 and self.weight_decay >= 0.0):
            raise InputError(
                f"need lr > 0, 0 <= momentum < 1 and weight_decay >= 0, got {self.lr}, {self.momentum}, "
                f"{self.weight_decay}"
            )
        LABEL_SMOOTHING.check(self.label_smoothing, "label smoothing")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def batch_starts(num_samples: int, batch_size: int, drop_last: bool) -> range:
    """First row of every batch of an epoch; with ``drop_last`` the trailing partial batch is skipped
    (every batch then has exactly ``batch_size`` rows)."""
    end = num_samples - num_samples % batch_size if drop_last else num_samples
    if end == 0:
        raise InputError(
            f"{num_samples} training samples hold no full batch of {batch_size}; lower the batch size"
        )
    return range(0, end, batch_size)


@dataclass(frozen=True)
class RunState:
    """A from-scratch run between two epochs: the model, its SGD optimizer (momentum buffers), the cosine
    schedule (``last_epoch``: the epochs done, so the learning rate of the next epoch follows from it) and
    the generator of the batch orders. :func:`train_epochs` advances it in place."""

    model: nn.Module
    optimizer: torch.optim.SGD
    schedule: torch.optim.lr_scheduler.CosineAnnealingLR
    order: torch.Generator

    @property
    def epoch(self) -> int:
        """Epochs trained so far (0: the initialisation)."""
        return int(self.schedule.last_epoch)


def optimizer_of(
    model: nn.Module, recipe: Recipe
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.CosineAnnealingLR]:
    """The recipe's SGD optimizer over ``model``'s parameters and its cosine schedule over all epochs."""
    optimizer = torch.optim.SGD(
        model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe.epochs)


def start_run(record: dict[str, Any], recipe: Recipe, seed: int) -> RunState:
    """Epoch 0 of a run: ``torch.manual_seed(seed)`` right before the architecture ``record`` is built,
    a fresh optimizer and schedule, and the batch-order generator seeded with ``seed``."""
    recipe.validate()
    torch.manual_seed(seed)
    model = build_model(record)
    optimizer, schedule = optimizer_of(model, recipe)
    return RunState(model, optimizer, schedule, torch.Generator().manual_seed(seed))


def train_from_scratch(
    record: dict[str, Any],
    train: ArrayDataset,
    recipe: Recipe,
    seed: int,
    *,
    on_epoch: EpochHook | None = None,
    tracker: Tracker | None = None,
    description: str = "train",
    regularizer: RegularizerForm | None = None,
) -> nn.Module:
    """Build the architecture ``record`` with seed ``seed`` and train it on ``train`` with ``recipe``
    (and the MIR/HDR ``regularizer`` added to every batch's loss when it is given and active).

    Returns the model in eval mode. ``on_epoch`` sees the model after each epoch (to checkpoint or
    measure it: switch to eval mode inside and back to train mode before returning).
    """
    state = start_run(record, recipe, seed)
    return train_epochs(state, train, recipe, recipe.epochs, on_epoch=on_epoch, tracker=tracker,
                        description=description, regularizer=regularizer)  # fmt: skip


def train_epochs(
    state: RunState,
    train: ArrayDataset,
    recipe: Recipe,
    until: int,
    *,
    on_epoch: EpochHook | None = None,
    tracker: Tracker | None = None,
    description: str = "train",
    regularizer: RegularizerForm | None = None,
) -> nn.Module:
    """Train ``state`` from its epoch to epoch ``until`` (at most ``recipe.epochs``); returns its model in
    eval mode. Every epoch draws a fresh permutation from ``state.order`` and steps the schedule once, so
    a run stopped at epoch k and continued ends with the same floats as one trained straight through."""
    recipe.validate()
    if not state.epoch <= until <= recipe.epochs:
        raise InputError(f"cannot train from epoch {state.epoch} to epoch {until} of {recipe.epochs}")
    if regularizer is not None:
        regularizer.validate()
    regularized = regularizer is not None and regularizer.active
    tracker = tracker or SilentTracker()
    model, optimizer, schedule, order = state.model, state.optimizer, state.schedule, state.order
    head = find_head_module(model, None)[1] if regularized else None
    starts = batch_starts(len(train), recipe.batch_size, recipe.drop_last)
    seen = sum(min(recipe.batch_size, len(train) - start) for start in starts)  # rows per epoch
    model.train()
    with tracker.stage(description, until - state.epoch, unit="epochs") as advance:
        for epoch in range(state.epoch + 1, until + 1):
            permutation = torch.randperm(len(train), generator=order)  # (N,)
            total = torch.zeros((), dtype=torch.float64)
            for start in starts:
                index = permutation[start : start + recipe.batch_size]  # (B,)
                optimizer.zero_grad()
                labels = train.labels[index]  # (B,)
                if regularized:
                    assert regularizer is not None and head is not None
                    logits, features = forward_with_features(
                        model, take(train.inputs, index)
                    )  # (B, C), (B, d)
                    loss = classification_loss(logits, labels, recipe.label_smoothing)
                    loss = loss + regulariser_of(regularizer, features, labels, head.weight)
                else:
                    logits = model(take(train.inputs, index))  # (B, C)
                    loss = classification_loss(logits, labels, recipe.label_smoothing)
                loss.backward()
                optimizer.step()
                total += loss.detach().double() * index.shape[0]
            schedule.step()
            if on_epoch is not None:
                on_epoch(epoch, model, float(total) / seen)
                model.train()
            advance(1)
    return model.eval()
