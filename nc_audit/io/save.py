"""Writing self-describing checkpoints, atomically (a killed write never leaves a file that looks complete).

A `.pt` checkpoint is a plain dict that ``torch.load(weights_only=True)`` reads back:
``{"format": "nc-audit-checkpoint/1", "state_dict": ..., "architecture": {nc-audit-arch/1 record},
"step": int, "epoch": int, ...}`` plus, for training checkpoints, optimizer and RNG state. A
`.safetensors` checkpoint holds the state dict and the same record as JSON metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from nc_audit.core.formats import CHECKPOINT_FORMAT
from nc_audit.io.atomic import atomic_path
from nc_audit.io.checkpoints import (
    SAFETENSORS_ARCH_KEY,
    SAFETENSORS_META_KEY,
    SAFETENSORS_SUFFIX,
)


def save_checkpoint(
    path: Path | str,
    state_dict: dict[str, torch.Tensor],
    architecture: dict[str, Any] | None,
    meta: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a self-describing checkpoint to ``path`` (.pt/.pth or .safetensors) atomically.

    ``meta`` holds plain data (step, epoch, dataset, metrics); ``extra`` holds training state
    (optimizer, rng) and is stored in `.pt` files only. Returns the path.
    """
    path = Path(path)
    weights = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
    with atomic_path(path) as tmp:
        if path.suffix.lower() == SAFETENSORS_SUFFIX:
            from safetensors.torch import save_file

            metadata = {SAFETENSORS_META_KEY: json.dumps(meta or {})}
            if architecture is not None:
                metadata[SAFETENSORS_ARCH_KEY] = json.dumps(architecture)
            save_file(weights, str(tmp), metadata=metadata)
        else:
            payload: dict[str, Any] = {"format": CHECKPOINT_FORMAT, "state_dict": weights}
            if architecture is not None:
                payload["architecture"] = architecture
            payload.update(meta or {})
            payload.update(extra or {})
            with open(tmp, "wb") as handle:  # a handle, not a name: the zip's root folder is then
                torch.save(payload, handle)  # "archive", not the temporary name (same bytes every run)
    return path
