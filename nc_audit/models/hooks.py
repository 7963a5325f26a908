"""Features as the head's input: a forward pre-hook on the classifier head, never a copy of forward()."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from nc_audit.core.errors import InputError


def find_head_module(model: nn.Module, head_name: str | None = None) -> tuple[str, nn.Linear]:
    """The classifier head as (dotted name, module): ``head_name``, else attribute ``head``, else last Linear."""
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    known = ", ".join(name for name, _ in linears) or "none"
    if head_name is None:
        if isinstance(getattr(model, "head", None), nn.Linear):
            return "head", model.head
        if not linears:
            raise InputError(f"{type(model).__name__} has no nn.Linear layer to use as the classifier head")
        return linears[-1]
    try:
        module = model.get_submodule(head_name)
    except AttributeError:
        raise InputError(f"--head {head_name}: no such module; nn.Linear modules: {known}") from None
    if not isinstance(module, nn.Linear):
        raise InputError(
            f"--head {head_name} is a {type(module).__name__}, not nn.Linear; nn.Linear modules: {known}"
        )
    return head_name, module


class FeatureTap:
    """Context manager that records the input of a model's head on each forward (features (N, d)).

    ``with FeatureTap(model) as tap: logits = model(x)`` then ``tap.features``; the hook is removed on exit.
    Features keep their autograd graph, so losses on them can train the model.
    """

    def __init__(self, model: nn.Module, head_name: str | None = None) -> None:
        self.head_name, self.head = find_head_module(model, head_name)
        self._captured: list[Tensor] = []
        self._handle: torch.utils.hooks.RemovableHandle | None = None

    def _record(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        self._captured.append(inputs[0])

    def __enter__(self) -> FeatureTap:
        self._captured.clear()
        self._handle = self.head.register_forward_pre_hook(self._record)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    @property
    def features(self) -> Tensor:
        """The head's input from the single forward call made inside the block. (N, d)."""
        if len(self._captured) != 1:
            raise InputError(
                f"head {self.head_name!r} ran {len(self._captured)} times in one forward, expected once"
            )
        return self._captured[0]


def forward_with_features(
    model: nn.Module, inputs: Tensor, head_name: str | None = None
) -> tuple[Tensor, Tensor]:
    """One forward pass returning (logits (N, C), features (N, d)); features are the head's input."""
    with FeatureTap(model, head_name) as tap:
        logits = model(inputs)  # (N, C)
    features = tap.features  # (N, d)
    if logits.dim() != 2 or features.dim() != 2:
        raise InputError(
            f"head {tap.head_name!r} maps {tuple(features.shape)} to {tuple(logits.shape)}; expected (N, d) to (N, C)"
        )
    return logits, features
