"""A loaded checkpoint as plain data: its weights and what it says about itself (read by
:mod:`nc_audit.io.checkpoints.load`, its head found by :mod:`nc_audit.io.checkpoints.heads`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nc_audit.io.checkpoints.hf_folder import config_num_labels


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: its weights and what it says about itself."""

    path: Path
    sha256: str
    state_dict: dict[str, torch.Tensor]
    architecture: dict[str, Any] | None = None  # nc-audit-arch/1 record, when the file has one
    meta: dict[str, Any] = field(default_factory=dict)  # step, epoch, ... (plain data)
    ordered: bool = True  # whether key order follows module order (False for safetensors: sorted keys)
    notes: tuple[str, ...] = ()  # what loading changed in the keys (prefixes removed), for the report
    stripped: str = ""  # the leading prefix removed from every key (put back for a model that has it)
    hf_config: dict[str, Any] | None = None  # config.json of a Hugging Face save_pretrained folder

    @property
    def hf_folder(self) -> Path | None:
        """The save_pretrained folder this checkpoint was read from, or None."""
        if self.hf_config is None:
            return None
        return self.path if self.path.is_dir() else self.path.parent

    @property
    def num_classes(self) -> int | None:
        """The number of classes the checkpoint declares (its record, or a Hugging Face config)."""
        if self.architecture is not None and isinstance(self.architecture.get("num_classes"), int):
            return int(self.architecture["num_classes"])
        return config_num_labels(self.hf_config) if self.hf_config is not None else None

    @property
    def step(self) -> int | None:
        """The training step (or epoch) the checkpoint records, if any."""
        return step_of(self.meta)


def step_of(meta: dict[str, Any]) -> int | None:
    """The training step (or, failing that, the epoch) recorded in a checkpoint's plain-data fields."""
    for key in ("step", "global_step", "epoch"):
        value = meta.get(key)
        if isinstance(value, int):
            return value
    return None
