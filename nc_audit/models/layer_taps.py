"""The inputs of a model's layers in one forward pass, pooled as the head's input is (``--layers``).

Which layers (:func:`select_layers`): ``all`` is every leaf module that holds parameters of its own
(Linear, Conv, BatchNorm, LayerNorm, ...), the head and anything inside it excluded, in the order the
forward pass calls them; named layers are modules by qualified name (``body.3``), leaves or blocks. The
head's own input is always measured too (the same features ``measure`` measures), so a layer list ends
with the head.

What is measured: the first positional tensor a layer receives (else its first tensor keyword argument),
on its first call in the forward; pooled to (N, width) by :func:`pool_layer_input`:

- (N, d): as it is;
- (N, T, d), a sequence: the head's ``--pool`` rule when one is given, else the mean over the non-pad
  tokens (the model's own rule — the token whose head scores are the logits — exists at the head only);
- (N, channels, *spatial), a convolutional feature map: the mean over the spatial positions (global
  average pooling, as a CNN's head pools), so the width is the channel count (never flattened).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from nc_audit.core.errors import InputError, did_you_mean
from nc_audit.core.inputs import Inputs
from nc_audit.models.pooling import pool_rule

#: The ``--layers`` value that selects every leaf layer with parameters before the head.
ALL_LAYERS = "all"
#: Valid names listed in an error message, at most.
SHOWN_NAMES = 8


def _owns_parameters(module: nn.Module) -> bool:
    return next(module.parameters(recurse=False), None) is not None


def _inside(name: str, block: str) -> bool:
    return name == block or name.startswith(block + ".")


def candidate_layers(model: nn.Module, head_name: str) -> list[str]:
    """Leaf modules with parameters of their own, outside the head, in registration order."""
    return [
        name
        for name, module in model.named_modules()
        if name and not any(True for _ in module.children()) and _owns_parameters(module)
        if not _inside(name, head_name)
    ]


def select_layers(model: nn.Module, names: tuple[str, ...], head_name: str) -> tuple[bool, list[str]]:
    """(whether ``all`` was asked, the module names to tap): ``names`` is ``("all",)`` or qualified module
    names; an unknown name is an InputError naming it and listing a few valid ones."""
    head_module = head_name.split("@", 1)[0]
    if names == (ALL_LAYERS,):
        return True, candidate_layers(model, head_module)
    if ALL_LAYERS in names:
        raise InputError("--layers all stands alone; list module names without it (--layers body.0,body.3)")
    known = [name for name, _ in model.named_modules() if name]
    chosen: list[str] = []
    for name in names:
        if name not in known:
            leaves = candidate_layers(model, head_module) or known
            shown = ", ".join(leaves[:SHOWN_NAMES]) + (" ..." if len(leaves) > SHOWN_NAMES else "")
            raise InputError(
                f"--layers {name!r}: {type(model).__name__} has no module of that name;"
                f"{did_you_mean(name, known)} layers: {shown or 'none'} (or --layers all)"
            )
        if _inside(name, head_module):
            continue  # the head's input is always measured
        if name not in chosen:
            chosen.append(name)
    return False, chosen


def _first_tensor(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tensor | None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, Tensor):
            return value
    return None


def pool_layer_input(features: Tensor, inputs: Inputs, model: nn.Module, pool: str | None) -> Tensor:
    """A layer's input pooled to (N, width): see the module docstring."""
    if features.dim() == 2:
        return features
    if features.dim() == 3:
        return pool_rule(features, inputs, model, pool or "mean")
    return features.flatten(2).mean(-1)  # (N, channels): global average over the spatial positions


@dataclass
class LayerTap:
    """Forward pre-hooks on ``names`` of ``model`` that keep each one's input of the forward run inside
    the ``with`` block: ``with LayerTap(model, names) as tap: model(x)`` then ``tap.captured``
    (name → tensor, in the order the layers ran) and ``tap.calls`` (name → how often it ran)."""

    model: nn.Module
    names: list[str]
    captured: dict[str, Tensor] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    _handles: list[torch.utils.hooks.RemovableHandle] = field(default_factory=list)

    def _hook(self, name: str) -> Any:
        def record(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            self.calls[name] = self.calls.get(name, 0) + 1
            tensor = _first_tensor(args, kwargs)
            if tensor is not None and name not in self.captured:
                self.captured[name] = tensor.detach()

        return record

    def __enter__(self) -> LayerTap:
        self.captured.clear()
        self.calls.clear()
        for name in self.names:
            module = self.model.get_submodule(name)
            self._handles.append(module.register_forward_pre_hook(self._hook(name), with_kwargs=True))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def measurable(name: str, tensor: Tensor | None, calls: int, rows: int) -> str | None:
    """Why a tapped layer's input cannot be measured (None when it can): it did not run, ran more than
    once in one forward (shared weights: which call?), or its input is not floating (N, ...) rows."""
    if tensor is None:
        return (
            f"layer {name!r} received no tensor in the forward pass"
            if calls
            else f"layer {name!r} did not run in the forward pass"
        )
    if calls > 1:
        return f"layer {name!r} ran {calls} times in one forward pass (its input is ambiguous)"
    if not tensor.is_floating_point():
        return f"layer {name!r} takes {tensor.dtype} input (token ids, not features)"
    if tensor.dim() < 2 or tensor.shape[0] != rows:
        return f"layer {name!r} takes input of shape {tuple(tensor.shape)}, not one row per sample"
    return None
