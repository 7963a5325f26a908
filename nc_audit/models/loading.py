"""A model rebuilt from a checkpoint, ready to run: from the checkpoint's own architecture record, a
Hugging Face ``save_pretrained`` folder, or a user factory (``--model MODULE:CALLABLE`` with
``--model-arg KEY=VALUE``: their code, their trust); the weights loaded strictly.

Used by everything that runs a checkpoint's model: ``extract`` (and so ``measure --data``),
``interpolate`` and ``finetune``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints.load import Checkpoint, find_head, load_checkpoint
from nc_audit.models.factories import factory_from_record, load_factory
from nc_audit.models.factory_rule import check_args
from nc_audit.models.hf_config import MAX_LABELS
from nc_audit.models.hooks import find_head_module
from nc_audit.models.meta_build import check_model_size, tensor_bytes
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


def _checkpoint_classes(
    checkpoint: Checkpoint, head: str | None, num_classes: int | None
) -> tuple[int | None, str]:
    """The checkpoint's number of classes: declared, else the rows of its (named or detected) head; and
    where it came from (``head fc.weight (10, 24)``), for the note that says so."""
    if checkpoint.num_classes is not None:
        return checkpoint.num_classes, "its declared num_classes"
    try:
        found = find_head(checkpoint, head_name=head, num_classes=num_classes)
    except InputError:
        return None, ""
    key = found.name if found.name in checkpoint.state_dict else f"{found.name}.weight"
    return found.num_classes, f"head {key} {tuple(found.weight.shape)}"


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


def _recorded_args(checkpoint: Checkpoint, model_spec: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The arguments a ``factory`` record stores for ``model_spec`` (used when --model names the recorded
    callable and no --model-arg is given), through the recorded-argument rule of
    :mod:`nc_audit.models.factory_rule`; and a note naming what the rule dropped."""
    record = checkpoint.architecture or {}
    config = record.get("config")
    if (
        record.get("name") != "factory"
        or not isinstance(config, dict)
        or config.get("callable") != model_spec
    ):
        return None, []
    checked = check_args(config.get("args", {}))
    left_out = [*checked.dropped, *checked.refused]
    notes = []
    if left_out:
        notes.append(
            f"--model {model_spec}: the checkpoint's recorded argument(s) {', '.join(left_out)} were not passed "
            "(a file's arguments may not download, trust code or name files; give --model-arg to pass your own)"
        )
    return checked.kept, notes


def _record_classes(record: dict[str, Any], where: str) -> int | None:
    value = record.get("num_classes")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LABELS:
        raise InputError(
            f"{where}: the architecture record's num_classes {str(value)[:40]!r} is not 1 to {MAX_LABELS:,}"
        )
    return value


def _record_builder(record: dict[str, Any], where: str) -> tuple[Callable[[], nn.Module], list[str]]:
    """A function building the record's model (call it under ``torch.device("meta")`` for a probe), and
    the notes building it gives. A factory record is checked against the rule of
    :mod:`nc_audit.models.factory_rule` here, before anything is imported."""
    name = record.get("name")
    if name == "factory":
        factory = factory_from_record(record, where)
        classes = _record_classes(record, where)
        return lambda: factory(classes), factory.notes
    if name == "huggingface":
        from nc_audit.models.huggingface import build_from_record

        return lambda: build_from_record(record, where), []
    return lambda: build_model(record, where), []


def _build_record(checkpoint: Checkpoint, where: str) -> tuple[nn.Module, list[str]]:
    """The checkpoint's architecture record built on the meta device first (no memory), its shapes and
    size compared with the checkpoint's tensors — a record asking for hidden=[30000, 30000] or
    ``torch.nn:Linear(20000, 20000)`` beside a small state dict is an InputError, not gigabytes — and
    only then built for real."""
    record = checkpoint.architecture or {}
    try:
        build, notes = _record_builder(record, where)
        with torch.device("meta"):
            probe = build()
    except InputError as error:  # every message names the user's file
        if str(error).startswith(where):
            raise
        raise InputError(f"{where}: {error}") from None
    state, _, _ = fit_state(probe, checkpoint)
    check_weights_fit(probe, state, where)
    check_model_size(probe, tensor_bytes(checkpoint.state_dict.values()), where, "the architecture record")
    del probe
    model = build()
    if record.get("name") == "factory":
        notes = [*notes, f"rebuilt with the checkpoint's recorded factory {record['config']['callable']}"]
    return model, list(dict.fromkeys(notes))


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

        # transformers loads (and renames) the weights, after the config is bounded and probed on meta
        model = load_pretrained(
            checkpoint.hf_folder, checkpoint.hf_config, tensor_bytes(checkpoint.state_dict.values())
        )
        name = find_head_module(model, head)[0] if head else hf_head_name(model, num_classes)
        return LoadedModel(model, name, checkpoint, hf_record(model, name), tuple(notes))
    if model_spec is not None:
        recorded, recorded_notes = (None, []) if model_args else _recorded_args(checkpoint, model_spec)
        factory = load_factory(model_spec, model_args if model_args else recorded)
        notes += recorded_notes
        classes, source = _checkpoint_classes(checkpoint, head, num_classes)
        model = factory(classes)
        said = "taken from the checkpoint's head"
        notes += [note.replace(said, f"taken from the checkpoint's {source}", 1) for note in factory.notes]
    elif checkpoint.architecture is not None:
        model, record_notes = _build_record(checkpoint, where)  # probed on the meta device first
        notes += record_notes
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
    recorded_head = (checkpoint.architecture or {}).get("head")
    wanted = head or (recorded_head if isinstance(recorded_head, str) else None)
    try:
        name, linear = find_head_module(model, put_back + wanted if wanted else None, num_classes)
    except InputError as error:
        if head:
            raise
        if not wanted:  # a detected head that is not certain: name the checkpoint
            raise InputError(f"{where}: {error}") from None
        # the head came from the file's record, not from a --head the user gave
        message = str(error).replace(
            f"--head {put_back + wanted}", f"the head {wanted!r} its record names", 1
        )
        raise InputError(f"{where}: {message}") from None
    architecture: dict[str, Any] | None
    if model_spec is not None:
        architecture = factory.record(int(linear.out_features), name)
    else:
        architecture = checkpoint.architecture
    return LoadedModel(model.eval(), name, checkpoint, architecture, tuple(notes + fit_notes))
