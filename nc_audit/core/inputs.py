"""A model's inputs: one tensor (passed positionally) or several named tensors (passed as keyword
arguments, as a Hugging Face model takes ``input_ids``, ``attention_mask``, ``token_type_ids`` or
``pixel_values``). Every tensor's first dimension is the sample dimension N."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

Inputs = Tensor | dict[str, Tensor]


def num_rows(inputs: Inputs) -> int:
    """N, the number of samples."""
    if isinstance(inputs, dict):
        return int(next(iter(inputs.values())).shape[0])
    return int(inputs.shape[0])


def take(inputs: Inputs, index: Any) -> Inputs:
    """The rows ``index`` (a slice or an index tensor) of every tensor."""
    if isinstance(inputs, dict):
        return {name: tensor[index] for name, tensor in inputs.items()}
    return inputs[index]


def to_device(inputs: Inputs, device: torch.device | str) -> Inputs:
    """Every tensor moved to ``device``."""
    if isinstance(inputs, dict):
        return {name: tensor.to(device) for name, tensor in inputs.items()}
    return inputs.to(device)


def describe(inputs: Inputs) -> str:
    """Shapes for an error message: ``(N, 64)`` or ``input_ids (N, 12), attention_mask (N, 12)``."""
    if isinstance(inputs, dict):
        return ", ".join(f"{name} {tuple(tensor.shape)}" for name, tensor in inputs.items())
    return str(tuple(inputs.shape))
