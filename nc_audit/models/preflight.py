"""Everything checked before a model's first full pass over a dataset, so a mismatch is named with the
user's file after a second, not as a library's exception after the whole pass: the arrays against the
forward's arguments (:mod:`nc_audit.models.forward_inputs`), token ids and widths
(:mod:`nc_audit.models.input_fit`), a decoder classifier's ``pad_token_id``, and a two-row probe through
the model that finds the head's input and how it is pooled (:mod:`nc_audit.models.pooling`)."""

from __future__ import annotations

import torch
from torch import nn

from nc_audit.core.errors import InputError
from nc_audit.core.inputs import Inputs, to_device
from nc_audit.models.forward_inputs import check_forward_inputs
from nc_audit.models.hooks import forward_with_features
from nc_audit.models.input_fit import check_inputs_fit
from nc_audit.models.pooling import check_pad_token

#: Rows the probe sends through the model (two: a batch, so per-row pooling is exercised).
PROBE_ROWS = 2


def _rows(inputs: Inputs, count: int) -> Inputs:
    if isinstance(inputs, dict):
        return {name: tensor[:count] for name, tensor in inputs.items()}
    return inputs[:count]


def check_before_forward(
    model: nn.Module, inputs: Inputs, head: str | None, where: str, device: torch.device | str = "cpu"
) -> None:
    """InputError naming ``where`` (``FILE [split]``) when ``inputs`` cannot go through ``model`` and
    give the head's features; runs the model on at most two rows."""
    check_forward_inputs(model, inputs, where)
    check_inputs_fit(model, inputs, where)
    check_pad_token(model, inputs, where)
    probe = _rows(inputs, PROBE_ROWS)
    if (probe.shape[0] if not isinstance(probe, dict) else next(iter(probe.values())).shape[0]) == 0:
        return
    try:
        with torch.inference_mode():
            forward_with_features(model, to_device(probe, device), head)
    except InputError as error:
        raise InputError(f"{where}: {error}") from None
