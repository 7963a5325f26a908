"""A model rebuilt from a checkpoint, ready to run: from the checkpoint's own architecture record, a
Hugging Face ``save_pretrained`` folder, or a user factory (``--model MODULE:CALLABLE`` with
``--model-arg KEY=VALUE``: their code, their trust); the weights loaded strictly.

Used by everything that runs a checkpoint's model: ``extract`` (and so ``measure --data``),
``interpolate`` and ``finetune``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints import Checkpoint, find_head, load_checkpoint
from nc_audit.models.factories import load_factory
from nc_audit.models.hooks import find_head_module
from nc_audit.models.registry import build_model, check_weights_fit, load_weights

#: How deep a prefix a checkpoint's tensors may sit under when only a submodule's weights fit the model.
_PREFIX_DEPTH = 3


@dataclass(frozen=True)
class LoadedModel:
    """A model rebuilt from a checkpoint, ready for forward passes (eval mode)."""

    model: nn.Module
    head_name: str  # dotted module name of the classifier head inside ``model``
    checkpoint: Checkpoint
    architecture: dict[str, Any] | None  # the nc-audit-arch/1 record that rebuilds it (None: unknown)
    notes: tuple[str, ...] = ()  # what loading did that a report should say

    @property
    def num_classes(self) -> int:
        return int(find_head_module(self.model, self.head_name)[1].out_features)

    @property
    def kind(self) -> str | None:
        """The record's architecture name (``mlp``, ``adapter``, ``factory``, ``huggingface``, ...)."""
        return None if self.architecture is None else self.architecture.get("name")


def _checkpoint_classes(checkpoint: Checkpoint, head: str | None, num_classes: int | None) -> int | None:
    """The checkpoint's number of classes: declared, else the rows of its (named or detected) head."""
    if checkpoint.num_classes is not None:
        return checkpoint.num_classes
    try:
        return find_head(checkpoint, head_name=head, num_classes=num_classes).num_classes
    except InputError:
        return None


def fit_state(model: nn.Module, checkpoint: Checkpoint) -> tuple[dict[str, Tensor], str, list[str]]:
    """The checkpoint's tensors keyed as ``model`` names them: as loaded, with the stripped prefix put
    back (a factory that builds the LightningModule itself), or the subset under one prefix (a
    Lightning module that also holds a loss's buffers). Returns (state, prefix put back, notes)."""
    expected = set(model.state_dict())
    state = checkpoint.state_dict
    if set(state) == expected:
        return state, "", []
    if checkpoint.stripped and {checkpoint.stripped + key for key in state} == expected:
        return {checkpoint.stripped + key: value for key, value in state.items()}, checkpoint.stripped, []
    prefixes = sorted(
        {".".join(key.split(".")[:depth]) + "." for key in state for depth in range(1, _PREFIX_DEPTH + 1)}
    )
    for prefix in prefixes:
        sub = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
        if set(sub) == expected:
            note = f"used the {len(sub)} tensors under '{prefix}' (of {len(state)} in the checkpoint)"
            return sub, "", [note]
    return state, "", []  # load_weights lists what does not fit


def _recorded_args(checkpoint: Checkpoint, model_spec: str) -> dict[str, Any] | None:
    """The arguments a ``factory`` record stores for ``model_spec`` (used when --model names the recorded
    callable and no --model-arg is given)."""
    record = checkpoint.architecture or {}
    config = record.get("config") or {}
    if record.get("name") == "factory" and config.get("callable") == model_spec:
        args = config.get("args")
        return dict(args) if isinstance(args, dict) else None
    return None


def _check_record_fits(checkpoint: Checkpoint, where: str) -> None:
    """A built-in architecture record is first built on the meta device (no memory) and its shapes compared
    with the checkpoint's weights: a record asking for hidden=[30000, 30000] beside a small state dict is
    an InputError, not a 3.6 GB allocation. (Factory and Hugging Face records build the user's or the
    library's code: they are checked after building, as before.)"""
    record = checkpoint.architecture or {}
    if record.get("name") in ("factory", "huggingface"):
        return
    with torch.device("meta"):
        probe = build_model(record, where)
    state, _, _ = fit_state(probe, checkpoint)
    check_weights_fit(probe, state, where)


def load_model(
    checkpoint_path: Path | str,
    model_spec: str | None = None,
    head: str | None = None,
    model_args: dict[str, Any] | None = None,
    num_classes: int | None = None,
) -> LoadedModel:
    """Rebuild the checkpoint's model, in eval mode: ``model_spec``'s factory when given (it wins), else
    a Hugging Face folder's model, else the checkpoint's architecture record. ``num_classes`` is the
    number of classes the data holds, when known: it picks the head among several candidates."""
    checkpoint = load_checkpoint(checkpoint_path)
    where = str(checkpoint.path)
    if model_args and model_spec is None:
        raise InputError("--model-arg needs --model MODULE:CALLABLE (the callable the arguments are for)")
    notes = list(checkpoint.notes)
    if model_spec is None and checkpoint.hf_folder is not None:
        from nc_audit.models.huggingface import head_name as hf_head_name
        from nc_audit.models.huggingface import hf_record, load_pretrained

        model = load_pretrained(checkpoint.hf_folder)  # transformers loads (and renames) the weights
        name = find_head_module(model, head)[0] if head else hf_head_name(model, num_classes)
        return LoadedModel(model, name, checkpoint, hf_record(model, name), tuple(notes))
    if model_spec is not None:
        factory = load_factory(
            model_spec, model_args if model_args else _recorded_args(checkpoint, model_spec)
        )
        classes = _checkpoint_classes(checkpoint, head, num_classes)
        model = factory(classes)
        notes += factory.notes
    elif checkpoint.architecture is not None:
        _check_record_fits(checkpoint, where)  # before the model is allocated
        model = build_model(checkpoint.architecture, where)
        if checkpoint.architecture.get("name") == "factory":
            notes.append(f"rebuilt with the recorded --model {checkpoint.architecture['config']['callable']}")
    else:
        raise InputError(
            f"{where}: the checkpoint does not say which architecture it holds; pass --model MODULE:CALLABLE "
            "(a function or class that builds the module; --model-arg KEY=VALUE for its arguments)"
        )
    state, put_back, fit_notes = fit_state(model, checkpoint)
    try:
        load_weights(model, state, where)
    except InputError as error:
        if checkpoint.hf_folder is None:
            raise
        raise InputError(
            f"{error}; this is a Hugging Face folder: drop --model and transformers loads it (renaming keys "
            "as the model needs)"
        ) from None
    wanted = head or (checkpoint.architecture or {}).get("head")
    name, linear = find_head_module(model, put_back + wanted if wanted else None, num_classes)
    if model_spec is not None:
        architecture = factory.record(int(linear.out_features), name)
    else:
        architecture = checkpoint.architecture
    return LoadedModel(model.eval(), name, checkpoint, architecture, tuple(notes + fit_notes))
