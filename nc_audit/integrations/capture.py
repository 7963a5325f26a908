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
from nc_audit.core.inputs import Inputs
from nc_audit.models.hooks import find_head_module, logits_of
from nc_audit.models.pooling import pool_rule, pooled, pools_itself, split_head

#: Prefix of the metric names a callback logs (``nc_audit/nc1``, ``nc_audit/mir``, ...).
LOG_PREFIX = "nc_audit/"


class HeadRecorder:
    """Keeps the input of ``model``'s head on each forward in training mode (detached), and the head's
    weights as they were then: a callback runs after the optimizer step, when they have moved on.

    A head that reads every token (N, T, d) — a decoder sequence classifier's ``score`` — is pooled as
    ``measure`` pools it (models/pooling.py): once the forward of the model that owns the head returns,
    its features are the token whose head scores are that model's logits (the last non-pad token), or
    the ``NAME@last|first|mean`` rule given as ``head``; the owner is the innermost module holding the
    head whose forward pools it itself (a Hugging Face ``*ForSequenceClassification``), else ``model``.
    """

    def __init__(self, model: nn.Module, head: str | None = None) -> None:
        self.head_name, self.head = find_head_module(model, head)
        self.pool = split_head(self.head_name).pool
        self.owner = _pooling_owner(model, self.head)
        self._features: list[Tensor] = []
        self._tokens: Tensor | None = None  # a (N, T, d) input waiting for its owner's forward to return
        self._scores: Tensor | None = None  # the head's output (N, T, C) for it
        self.weight: Tensor | None = None  # W (C, d) at the last recorded forward
        self.bias: Tensor | None = None  # b (C,) at the last recorded forward
        self._computing = False  # while the recorder applies the head itself (not the model's forward)
        self._handles = [
            self.head.register_forward_pre_hook(self._record),
            self.head.register_forward_hook(self._record_scores),
            self.owner.register_forward_hook(self._pool, with_kwargs=True),
        ]

    def _record(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        if module.training and not self._computing:
            features = inputs[0].detach()
            if features.dim() == 3:
                self._tokens, self._scores = features, None
            else:
                self._features.append(features)
            self.weight = self.head.weight.detach().clone()
            self.bias = None if self.head.bias is None else self.head.bias.detach().clone()

    def _record_scores(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if self._tokens is not None and not self._computing and isinstance(output, Tensor):
            self._scores = output.detach()

    def _pool(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        """The owner's forward returned: its head's per-token input pooled as ``measure`` pools it."""
        if self._tokens is None:
            return
        tokens, scores, self._tokens, self._scores = self._tokens, self._scores, None, None
        named = {key: value for key, value in kwargs.items() if isinstance(value, Tensor)}
        inputs: Inputs = named if named or not args or not isinstance(args[0], Tensor) else args[0]
        if self.pool is not None:
            self._features.append(pool_rule(tokens, inputs, module, self.pool))
            return
        if scores is None:  # the head's output was not a tensor: its scores, without recording this call
            self._computing = True
            try:
                with torch.no_grad():
                    scores = self.head(tokens)
            finally:
                self._computing = False
        try:
            _, kept = pooled(
                tokens, scores, logits_of(output).detach(), inputs, module, (self.head_name, self.head), None
            )
        except InputError as error:
            raise InputError(
                f"NCAuditCallback: {error} (a callback takes the rule with the head: "
                f"head='{split_head(self.head_name).name or ''}@last')"
            ) from None
        self._features.append(kept)

    def clear(self) -> None:
        """Forget what was recorded (at the start of a step)."""
        self._features.clear()
        self._tokens = self._scores = None

    def features(self) -> Tensor | None:
        """The recorded features (n, d), or None when nothing was recorded."""
        if self._tokens is not None:
            raise InputError(
                f"NCAuditCallback: head {self.head_name!r} read every token {tuple(self._tokens.shape)} in a "
                f"forward that did not return through {type(self.owner).__name__}.forward, so they cannot be "
                "pooled as the model pools them; call the model (not its parts) in the training step"
            )
        if not self._features:
            return None
        features = torch.cat(self._features)
        if features.dim() != 2:
            raise InputError(
                f"head {self.head_name!r} took inputs of shape {tuple(features.shape)}; expected (N, d)"
            )
        return features

    def remove(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _pooling_owner(model: nn.Module, head: nn.Module) -> nn.Module:
    """The innermost module of ``model`` that holds ``head`` and pools its per-token scores in its own
    forward (models/pooling.py ``pools_itself``), else ``model``."""
    owners = [
        module
        for _, module in model.named_modules()
        if pools_itself(module) and any(inner is head for inner in module.modules())
    ]
    return owners[-1] if owners else model


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
