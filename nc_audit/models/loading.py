"""A model rebuilt from a checkpoint: the architecture from the checkpoint's own record or from a user
factory (``--model package.module:factory``: their code, their trust), the weights loaded strictly.

Used by everything that runs a checkpoint's model: ``extract`` (and so ``measure --data``),
``interpolate`` and ``finetune``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints import Checkpoint, load_checkpoint
from nc_audit.models.factories import load_factory
from nc_audit.models.hooks import find_head_module
from nc_audit.models.registry import build_model, load_weights


@dataclass(frozen=True)
class LoadedModel:
    """A model rebuilt from a checkpoint, ready for forward passes (eval mode)."""

    model: nn.Module
    head_name: str  # dotted module name of the classifier head inside ``model``
    checkpoint: Checkpoint
    architecture: dict[str, Any] | None  # the nc-audit-arch/1 record it was built from; None: a factory

    @property
    def num_classes(self) -> int:
        return int(find_head_module(self.model, self.head_name)[1].out_features)


def load_model(
    checkpoint_path: Path | str, model_spec: str | None = None, head: str | None = None
) -> LoadedModel:
    """Rebuild the checkpoint's model: from its architecture record, or from ``model_spec``'s factory
    (which wins when both are there), with the checkpoint's weights loaded strictly; in eval mode."""
    checkpoint = load_checkpoint(checkpoint_path)
    if model_spec is not None:
        model = load_factory(model_spec)()
    elif checkpoint.architecture is not None:
        model = build_model(checkpoint.architecture)
    else:
        raise InputError(
            f"{checkpoint.path}: the checkpoint does not say which architecture it holds; "
            "pass --model package.module:factory (a function that builds the module)"
        )
    load_weights(model, checkpoint.state_dict, str(checkpoint.path))
    architecture = None if model_spec is not None else checkpoint.architecture
    head_name, _ = find_head_module(model, head or (checkpoint.architecture or {}).get("head"))
    return LoadedModel(model.eval(), head_name, checkpoint, architecture)
