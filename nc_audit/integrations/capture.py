"""What both callbacks share: a forward pre-hook that keeps the head's input of every training forward
since the last clear (the micro-batches of one optimizer step), the trainer's own loss and learning rates
as a record's extra scalars, and turning a record into log values."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from nc_audit.core.errors import InputError
from nc_audit.models.hooks import find_head_module

#: Prefix of the metric names a callback logs (``nc_audit/nc1``, ``nc_audit/mir``, ...).
LOG_PREFIX = "nc_audit/"


class HeadRecorder:
    """Keeps the input of ``model``'s head on each forward in training mode (detached), and the head's
    weights as they were then: a callback runs after the optimizer step, when they have moved on."""

    def __init__(self, model: nn.Module, head: str | None = None) -> None:
        self.head_name, self.head = find_head_module(model, head)
        self._features: list[Tensor] = []
        self.weight: Tensor | None = None  # W (C, d) at the last recorded forward
        self.bias: Tensor | None = None  # b (C,) at the last recorded forward
        self._handle = self.head.register_forward_pre_hook(self._record)

    def _record(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        if module.training:
            self._features.append(inputs[0].detach())
            self.weight = self.head.weight.detach().clone()
            self.bias = None if self.head.bias is None else self.head.bias.detach().clone()

    def clear(self) -> None:
        """Forget what was recorded (at the start of a step)."""
        self._features.clear()

    def features(self) -> Tensor | None:
        """The recorded features (n, d), or None when nothing was recorded."""
        if not self._features:
            return None
        features = torch.cat(self._features)
        if features.dim() != 2:
            raise InputError(
                f"head {self.head_name!r} took inputs of shape {tuple(features.shape)}; expected (N, d)"
            )
        return features

    def remove(self) -> None:
        """Remove the hook."""
        self._handle.remove()


def log_values(record: dict[str, Any], exclude: Collection[str] = ()) -> dict[str, float]:
    """The metrics of a Monitor record as ``nc_audit/KEY`` → value, leaving out undefined ones and the
    ``exclude`` keys (the trainer's own loss and learning rate: it logs them itself)."""
    return {
        LOG_PREFIX + key: float(value)
        for key, value in record["metrics"].items()
        if value is not None and key not in exclude
    }


def number(value: Any) -> float | None:
    """A finite float from a number or a one-element tensor; None for anything else."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            return None
        value = value.detach().item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def learning_rates(optimizers: Iterable[Any]) -> dict[str, float]:
    """The learning rate of every parameter group of the optimizers, in order: ``lr`` when every group has
    the same, else ``lr_0``, ``lr_1``, ... (the names ``nc-audit track`` plots on a learning-rate axis)."""
    rates = []
    for optimizer in optimizers:
        for group in getattr(optimizer, "param_groups", None) or ():
            rate = number(group.get("lr")) if isinstance(group, Mapping) else None
            if rate is not None:
                rates.append(rate)
    if len(set(rates)) == 1:  # one group, or groups that differ only in other settings (weight decay)
        return {"lr": rates[0]}
    return {f"lr_{index}": rate for index, rate in enumerate(rates)}


def losses(logged: Mapping[str, Any]) -> dict[str, float]:
    """The scalar entries of a trainer's logged values whose name holds ``loss`` (``loss``, ``train_loss``,
    ``val_loss``, ...): the names ``nc-audit track`` plots on a loss axis."""
    found = {}
    for key, value in logged.items():
        if isinstance(key, str) and "loss" in key.lower() and not key.startswith(LOG_PREFIX):
            scalar = number(value)
            if scalar is not None:
                found[key] = scalar
    return found
