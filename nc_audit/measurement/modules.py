"""Features from a module in memory, and in-memory arrays written as a dump, for the Python API.

``features(model, batch_or_loader)`` runs a module and returns the head's input with the logits (and
labels, for a loader). :func:`module_dump` and :func:`arrays_dump` write what ``measure(model, loader)``
and ``measure_arrays(...)`` measure into a temporary nc-audit dump, so those go through exactly the
streaming passes of ``nc-audit measure`` (every option applies, float64 throughout).

A batch is ``(inputs, labels)`` (a tuple or list; inputs a tensor or a dict of named tensors), or a
dict of named tensors holding ``labels`` (also ``label``, ``y`` or ``targets``) beside the model's
keyword inputs, as Hugging Face data collators make them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nc_audit.core.errors import InputError
from nc_audit.core.inputs import Inputs, to_device
from nc_audit.io.dumps.writer import write_dump
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
    return source


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
    labels = [y for _, _, y in parts]
    return Features(
        torch.cat([f for f, _, _ in parts]),
        torch.cat([z for _, z, _ in parts]),
        torch.cat(labels).long().cpu() if all(y is not None for y in labels) else None,
    )


def module_dump(model: nn.Module, loaders: Mapping[str, Any], path: Path, head: str | None) -> str:
    """Write every split's features (``loaders``: split name → loader) with the model's head to
    ``path``; returns the head's name."""
    head_name, head_module = find_head_module(model, head)
    with write_dump(path, {"dataset": "in-memory loader", "head": head_name}) as writer:
        for split, loader in loaders.items():
            found = features(model, loader, head_name)
            if found.labels is None:
                raise InputError(f"the {split} loader's batches carry no labels: yield (inputs, labels)")
            out = writer.split(split, len(found.labels), found.features.shape[1], found.logits.shape[1])
            out.append(found.features, found.labels, found.logits)
        writer.head(head_module.weight, head_module.bias, head_name)
    return head_name


def _array(name: str, value: Any) -> np.ndarray:
    try:
        return np.asarray(value.detach().cpu().numpy() if isinstance(value, Tensor) else value)
    except (TypeError, ValueError) as error:
        raise InputError(f"measure_arrays: {name} is not an array ({error})") from None


def arrays_dump(
    features: Any, labels: Any, head_weight: Any, head_bias: Any, path: Path, head: str = "head"
) -> None:
    """Write arrays as a dump with its head: ``features`` (N, d) and ``labels`` (N,), or dicts of them by
    split name; ``head_weight`` (C, d), ``head_bias`` (C,) or None. Floating features keep their dtype
    (float16/32/64); the statistics are float64 whatever it is."""
    splits_x = features if isinstance(features, Mapping) else {"train": features}
    splits_y = labels if isinstance(labels, Mapping) else {"train": labels}
    if set(splits_x) != set(splits_y):
        raise InputError(f"measure_arrays: features splits {sorted(splits_x)} vs labels {sorted(splits_y)}")
    W = _array("head_weight", head_weight).astype(np.float64)
    b = None if head_bias is None else _array("head_bias", head_bias).astype(np.float64)
    with write_dump(path, {"dataset": "in-memory arrays", "head": head}) as writer:
        for split, X in splits_x.items():
            H, y = _array(f"features[{split}]", X), _array(f"labels[{split}]", splits_y[split])
            if H.ndim != 2 or y.ndim != 1 or H.shape[0] != y.shape[0] or W.ndim != 2:
                raise InputError(
                    f"measure_arrays: features {H.shape}, labels {y.shape} and head_weight {W.shape} must be "
                    "(N, d), (N,) and (C, d)"
                )
            if H.dtype.kind != "f":
                H = H.astype(np.float64)
            if y.dtype.kind not in "iu":
                raise InputError(f"measure_arrays: labels[{split}] must be integers, found {y.dtype}")
            writer.handle.create_dataset(f"{split}/features", data=H)
            writer.handle.create_dataset(f"{split}/labels", data=y.astype(np.int64))
        writer.head(torch.from_numpy(W), None if b is None else torch.from_numpy(b), head)
