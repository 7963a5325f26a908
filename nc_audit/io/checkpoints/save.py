"""Writing self-describing checkpoints, atomically (a killed write never leaves a file that looks complete).

A `.pt` checkpoint is a plain dict that ``torch.load(weights_only=True)`` reads back:
``{"format": "nc-audit-checkpoint/1", "state_dict": ..., "architecture": {nc-audit-arch/1 record},
"step": int, "epoch": int, ...}`` plus, for training checkpoints, optimizer and RNG state. A
`.safetensors` checkpoint holds the state dict and the same record as JSON metadata.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from nc_audit.core.formats import CHECKPOINT_FORMAT
from nc_audit.io.checkpoints.load import (
    SAFETENSORS_ARCH_KEY,
    SAFETENSORS_META_KEY,
    SAFETENSORS_SUFFIX,
)
from nc_audit.io.guards.atomic import atomic_path


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
            from safetensors.torch import save

            metadata = {SAFETENSORS_META_KEY: json.dumps(meta or {})}
            if architecture is not None:
                metadata[SAFETENSORS_ARCH_KEY] = json.dumps(architecture)
            data = save(weights, metadata=metadata)
            _write_guarded(tmp, lambda handle: handle.write(data))
        else:
            payload: dict[str, Any] = {"format": CHECKPOINT_FORMAT, "state_dict": weights}
            if architecture is not None:
                payload["architecture"] = architecture
            payload.update(meta or {})
            payload.update(extra or {})
            _write_guarded(tmp, lambda handle: torch.save(payload, handle))
    return path


class _GuardedFile:
    """A binary file that remembers the OSError of a failed write: torch.save turns it into a
    RuntimeError ("enforce fail at inline_container.cc") that no longer says the disk is full."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.handle.write(data)
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        self.handle.flush()


def _write_guarded(tmp: Path, write: Callable[[Any], object]) -> None:
    """Run ``write`` on the open temporary file; a failed write surfaces as its own OSError (disk full),
    which :func:`nc_audit.io.guards.atomic.atomic_path` reports and cleans up."""
    with open(tmp, "wb") as handle:
        guarded = _GuardedFile(handle)
        try:
            write(guarded)
        except Exception:
            if guarded.error is not None:
                raise guarded.error from None
            raise
