"""Whether a dataset's inputs fit a model, checked before the first forward pass so a mismatch is named
with the user's file (never ``IndexError: index out of range in self`` or ``RuntimeError: mat1 and mat2
shapes cannot be multiplied``): token ids within the input embedding's vocabulary, and float inputs as
wide as the model's first layer when that layer is a Linear."""

from __future__ import annotations

import math

import torch
from torch import nn

from nc_audit.core.errors import InputError
from nc_audit.core.inputs import Inputs

#: Modules that hold no parameters and only reshape: a Linear after them still sees the flattened input.
_RESHAPING = (nn.Flatten, nn.Identity, nn.Dropout)


def vocabulary_size(model: nn.Module) -> int | None:
    """How many token ids the model takes: its declared ``input_vocabulary`` (a built-in model whose
    embedding is a plain matrix), else the size of its input embedding; None when it has neither."""
    declared = getattr(model, "input_vocabulary", None)
    if isinstance(declared, int) and not isinstance(declared, bool):
        return declared
    embedding = input_embedding(model)
    return None if embedding is None else embedding.num_embeddings


def input_embedding(model: nn.Module) -> nn.Embedding | None:
    """The embedding that takes token ids: a Hugging Face model's own, else the model's first Embedding."""
    getter = getattr(model, "get_input_embeddings", None)
    if callable(getter):
        try:
            found = getter()
        except (NotImplementedError, AttributeError):
            found = None
        if isinstance(found, nn.Embedding):
            return found
    return next((module for module in model.modules() if isinstance(module, nn.Embedding)), None)


def first_linear(model: nn.Module) -> tuple[str, nn.Linear] | None:
    """The model's first module with parameters when it is a Linear reached only through reshaping
    modules (an MLP, an adapter); None for anything else (a convolution first, an embedding, ...)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            return name, module
        if list(module.children()) or isinstance(module, _RESHAPING):
            continue  # a container: look inside
        return None  # a convolution, an activation, ... before any Linear: no claim about the width
    return None


def check_inputs_fit(model: nn.Module, inputs: Inputs, where: str) -> None:
    """InputError naming ``where`` (``FILE [split]``) when ``inputs`` cannot go through ``model``."""
    ids = inputs.get("input_ids") if isinstance(inputs, dict) else inputs
    if isinstance(ids, torch.Tensor) and not ids.is_floating_point() and ids.numel():
        vocab = vocabulary_size(model)
        if vocab is not None:
            low, high = int(ids.min()), int(ids.max())
            array = "input_ids" if isinstance(inputs, dict) else "inputs"
            if low < 0 or high >= vocab:
                raise InputError(
                    f"{where}: token ids in {array} lie in {low}..{high} but the model's vocabulary has {vocab} "
                    f"entries (ids 0..{vocab - 1}); is this the data the model was trained on?"
                )
        return
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 2:
        return
    found = first_linear(model)
    if found is None:
        return
    name, layer = found
    width = inputs.shape[-1] if inputs.dim() == 2 else math.prod(inputs.shape[1:])
    if layer.in_features in (width, inputs.shape[-1]):  # flattened, or applied to every token (N, T, d)
        return
    if width != layer.in_features:
        raise InputError(
            f"{where}: inputs {tuple(inputs.shape)} have width {width} but the model's first layer "
            f"'{name}' expects {layer.in_features}; is this the data (or the feature dump) the model takes?"
        )
