"""Whether a dataset's arrays are what the model's forward takes, checked before any forward pass.

Named arrays (``input_ids``, ``pixel_values``, ...) are passed as keyword arguments, so they must be
among the forward's parameters (``inspect.signature(model.forward)``), the required parameters must be
among them, and a Hugging Face model's main input (``main_input_name``: ``input_ids`` for text,
``pixel_values`` for images, ``input_values`` for audio) must be there with the right kind of values
(token ids are integers, pixels and waveforms floating point). A single unnamed array goes to the
forward's first parameter. Every refusal names the file's arrays and the forward's accepted arguments,
instead of ``You have to specify either input_ids or inputs_embeds`` after the model has run.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import NoReturn

import torch
from torch import nn

from nc_audit.core.errors import InputError
from nc_audit.core.inputs import Inputs

#: Main inputs that hold token ids (integers); any other main input holds floating point values.
_TOKEN_INPUTS = ("input_ids", "decoder_input_ids")
#: Arguments every Hugging Face forward has that a dataset never supplies (outputs, caches, flags).
_NOT_DATA = ("return_dict", "output_attentions", "output_hidden_states", "use_cache", "labels", "kwargs",
             "cache", "past_key_values", "cache_position", "logits_to_keep")  # fmt: skip


def _arrays(inputs: Inputs) -> str:
    """The file's arrays for a message: ``pixel_values (400, 3, 8, 8) float32``."""
    items = inputs.items() if isinstance(inputs, dict) else [("inputs", inputs)]
    return ", ".join(f"{name} {tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}" for name, t in items)


def _parameters(model: nn.Module) -> tuple[list[inspect.Parameter], bool]:
    """The forward's named parameters, and whether it takes ``**kwargs``."""
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return [], True  # no signature to check against
    named = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY, p.POSITIONAL_ONLY)
    ]
    var_keyword = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
    return named, var_keyword


def _main_input(model: nn.Module) -> str | None:
    """A Hugging Face model's main input name (None for other models)."""
    if not any(cls.__name__ == "PreTrainedModel" for cls in type(model).__mro__):
        return None
    name = getattr(model, "main_input_name", None)
    return name if isinstance(name, str) else None


def check_forward_inputs(model: nn.Module, inputs: Inputs, where: str) -> None:
    """InputError naming ``where`` (``FILE [split]``), the file's arrays and the forward's arguments
    when ``inputs`` cannot be what ``model``'s forward takes."""
    named, var_keyword = _parameters(model)
    if not named and var_keyword:
        return
    main = _main_input(model)
    accepted = [p.name for p in named if p.name not in _NOT_DATA]
    takes = f"{type(model).__name__}.forward takes {', '.join(accepted[:12]) or 'no named arguments'}"
    if main is not None:
        takes += f" (main input: {main})"

    def refuse(cause: str) -> NoReturn:
        raise InputError(f"{where}: {cause}; the file holds {_arrays(inputs)} and {takes}")

    if not isinstance(inputs, dict):
        if main is not None:
            _check_kind(main, inputs, refuse)
        return
    names = set(inputs)
    unknown = sorted(names - {p.name for p in named})
    if unknown and (main is not None or not var_keyword):
        refuse(f"array(s) {', '.join(unknown)} are not arguments of the model's forward")
    if main is not None:
        if main not in names and "inputs_embeds" not in names:
            refuse(f"the model's main input {main} is missing")
        if main in names:
            _check_kind(main, inputs[main], refuse)
    required = [
        p.name for p in named if p.default is p.empty and p.kind != p.POSITIONAL_ONLY and p.name not in names
    ]
    if required:
        refuse(f"the forward's required argument(s) {', '.join(required)} are missing")


def _check_kind(main: str, tensor: torch.Tensor, refuse: Callable[[str], NoReturn]) -> None:
    """Token ids must be integers, other main inputs floating point (wrong modality otherwise)."""
    wants_ids = main in _TOKEN_INPUTS
    if wants_ids and tensor.is_floating_point():
        refuse(f"the model reads token ids ({main}) but the file's inputs are floating point")
    if not wants_ids and not tensor.is_floating_point():
        refuse(f"the model reads {main} (floating point) but the file's inputs are {tensor.dtype}")
