"""Which model to build from a checkpoint and where it runs: one value built once from the options
(``--model``, ``--model-arg``, ``--head``, ``--device``) and passed through every layer that loads a
model (extract, the feature cache, measure, track, interpolate, prune, finetune)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from nc_audit.core.errors import InputError

if TYPE_CHECKING:
    import torch

    from nc_audit.models.loading import LoadedModel


def parse_model_args(items: list[str] | tuple[str, ...] | None) -> dict[str, Any]:
    """``--model-arg KEY=VALUE`` items as keyword arguments: VALUE is read as JSON (``10``, ``true``,
    ``[64, 64]``, ``{"a": 1}``), else kept as the string it is (``resnet10t``)."""
    args: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise InputError(f"--model-arg {item!r}: expected KEY=VALUE with KEY a Python identifier")
        if key in args:
            raise InputError(f"--model-arg {key} is given twice")
        try:
            args[key] = json.loads(text)
        except json.JSONDecodeError:
            args[key] = text
    return args


@dataclass(frozen=True)
class ModelSpec:
    """``factory``: MODULE:CALLABLE (or file.py:CALLABLE) for a checkpoint that does not describe its
    architecture (None: the checkpoint's own record or Hugging Face folder); ``arg_texts``: its
    ``KEY=VALUE`` arguments as typed (they name cache entries and recorded runs); ``head``: the head
    module's name (None: detected); ``device``: auto | cpu | cuda | cuda:N.

    Checked on construction: every argument parses, and arguments need a factory."""

    factory: str | None = None
    arg_texts: tuple[str, ...] = ()
    head: str | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "arg_texts", tuple(self.arg_texts))  # a list given is kept as a tuple
        parse_model_args(self.arg_texts)  # KEY=VALUE, KEY an identifier, given once
        if self.arg_texts and self.factory is None:
            raise InputError("--model-arg needs --model MODULE:CALLABLE (the callable the arguments are for)")

    @classmethod
    def from_options(
        cls, model: str | None, model_arg: list[str] | None, head: str | None, device: str
    ) -> ModelSpec:
        """The spec of a command's ``--model``, ``--model-arg`` (repeatable), ``--head`` and ``--device``."""
        return cls(model, tuple(model_arg or ()), head, device)

    @property
    def args(self) -> Mapping[str, Any]:
        """The factory's keyword arguments (VALUE read as JSON, else the string), read-only."""
        return MappingProxyType(parse_model_args(self.arg_texts))

    def torch_device(self) -> torch.device:
        """The device, resolved ('auto': CUDA when present; 'cuda' without a GPU is an InputError)."""
        from nc_audit.core.devices import resolve_device

        return resolve_device(self.device)

    def load(self, checkpoint: Path | str, num_classes: int | None = None) -> LoadedModel:
        """The checkpoint's model rebuilt in eval mode, on the CPU (nc_audit.models.loading.load_model)."""
        from nc_audit.models.loading import load_model

        return load_model(checkpoint, self.factory, self.head, dict(self.args) or None, num_classes)


#: No factory, no arguments, the head detected, device auto: a checkpoint that describes itself.
NO_MODEL = ModelSpec()
