"""Features from a module in memory, and in-memory arrays as splits, for the Python API.

``features(model, batch_or_loader)`` runs a module and returns the head's input with the logits (and
labels, for a loader). :func:`module_splits` and :func:`array_splits` hold what ``measure(model, loader)``
and ``measure_arrays(...)`` measure as in-memory splits, which go through exactly the streaming passes of
``nc-audit measure`` (:mod:`nc_audit.measurement.pipeline`; every option applies, float64 throughout,
no temporary file).

A batch is ``(inputs, labels)`` (a tuple or list; inputs a tensor or a dict of named tensors), or a
dict of named tensors holding ``labels`` (also ``label``, ``y`` or ``targets``) beside the model's
keyword inputs, as Hugging Face data collators make them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from nc_audit.core.errors import InputError
from nc_audit.core.inputs import Inputs, to_device
from nc_audit.io.checkpoints.load import Head
from nc_audit.io.dumps.memory import MemoryRows
from nc_audit.measurement.memory import as_head, as_rows
from nc_audit.models.hooks import find_head_module, forward_with_features

LABEL_KEYS = ("labels", "label", "y", "targets")


@dataclass(frozen=True)
class Features:
    """What :func:`features` returns: the head's input (N, d), the logits (N, C), and the labels (N,)
    when the batches carried them."""

    features: Tensor
    logits: Tensor
    labels: Tensor | None = None


def split_batch(batch: Any) -> tuple[Inputs, Tensor | None]:
    """(model inputs, labels or None) of one batch (see the module docstring)."""
    if isinstance(batch, Mapping):
        named = dict(batch)
        labels = next((named.pop(key) for key in LABEL_KEYS if key in named), None)
        return {k: v for k, v in named.items() if isinstance(v, Tensor)}, labels
    if isinstance(batch, (tuple, list)):
        if len(batch) == 0:
            raise InputError("an empty batch: expected (inputs, labels)")
        inputs = dict(batch[0]) if isinstance(batch[0], Mapping) else batch[0]
        return inputs, batch[1] if len(batch) > 1 else None
    if isinstance(batch, Tensor):
        return batch, None
    raise InputError(
        f"cannot read a batch of type {type(batch).__name__}: expected (inputs, labels) or a dict"
    )


def _device_of(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _batches(source: Any) -> Iterable[Any]:
    """One batch (a tensor, a dict, or an (inputs, labels) pair) as a list of one, else the iterable."""
    if isinstance(source, (Tensor, Mapping)):
        return [source]
    if isinstance(source, (tuple, list)) and source and isinstance(source[0], (Tensor, Mapping)):
        if len(source) == 2 and isinstance(source[1], Tensor) and source[1].dim() == 1:
            return [source]
    batches: Iterable[Any] = source  # a loader: any iterable of batches
    return batches


def features(model: nn.Module, batches: Any, head: str | None = None) -> Features:
    """Features (the head's input) and logits of ``model`` on one batch or on every batch of a loader,
    in order, without gradients, in eval mode (restored afterwards). ``head`` names the head module
    (default: detected as by ``nc-audit extract``)."""
    device = _device_of(model)
    head_name = find_head_module(model, head)[0]
    parts: list[tuple[Tensor, Tensor, Tensor | None]] = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in _batches(batches):
                inputs, labels = split_batch(batch)
                logits, feats = forward_with_features(model, to_device(inputs, device), head_name)
                parts.append((feats, logits, None if labels is None else torch.as_tensor(labels)))
    finally:
        model.train(was_training)
    if not parts:
        raise InputError("the loader yielded no batches")
    found = [y for _, _, y in parts if y is not None]
    return Features(
        torch.cat([f for f, _, _ in parts]),
        torch.cat([z for _, z, _ in parts]),
        torch.cat(found).long().cpu() if len(found) == len(parts) else None,
    )


def module_splits(
    model: nn.Module, loaders: Mapping[str | None, Any], head: str | None
) -> tuple[Head, dict[str | None, MemoryRows]]:
    """The model's head (float64, on the host) and every split's features with their labels
    (``loaders``: split name → loader; None: one loader without a split name), held in memory for
    :func:`nc_audit.measurement.pipeline.measure_memory`."""
    head_name, head_module = find_head_module(model, head)
    splits: dict[str | None, MemoryRows] = {}
    for split, loader in loaders.items():
        found = features(model, loader, head_name)
        if found.labels is None:
            raise InputError(
                f"the {split or 'given'} loader's batches carry no labels: yield (inputs, labels)"
            )
        splits[split] = as_rows(split or "all", found.features, found.labels, "measure(model, loader)")
    weight, bias = head_module.weight, head_module.bias
    return as_head(head_name, weight, bias, "measure(model, loader)"), splits


def array_splits(
    features: Any, labels: Any, head_weight: Any, head_bias: Any, head: str = "head"
) -> tuple[Head, dict[str | None, MemoryRows]]:
    """The head and the splits of arrays: ``features`` (N, d) and ``labels`` (N,), or dicts of them by
    split name; ``head_weight`` (C, d), ``head_bias`` (C,) or None. Floating features keep their dtype
    (float16/32/64); the statistics are float64 whatever it is."""
    where = "measure_arrays"
    if not isinstance(features, Mapping) and not isinstance(labels, Mapping):  # rows without split names
        return as_head(head, head_weight, head_bias, where), {None: as_rows("all", features, labels, where)}
    splits_x = features if isinstance(features, Mapping) else {"all": features}
    splits_y = labels if isinstance(labels, Mapping) else {"all": labels}
    if set(splits_x) != set(splits_y):
        raise InputError(f"{where}: features splits {sorted(splits_x)} vs labels {sorted(splits_y)}")
    rows: dict[str | None, MemoryRows] = {
        str(split): as_rows(str(split), X, splits_y[split], where) for split, X in splits_x.items()
    }
    return as_head(head, head_weight, head_bias, where), rows
