"""A model described by a file is built on the meta device first (shapes, no memory) and measured
against the file's own tensors before one real byte is allocated.

The checkpoint's tensors are already in memory, so a model that fits them costs about as much again;
what a file's record may add on top — buffers that are not saved (position ids, masks), or a whole
model when a record names something else than the weights it holds — is bounded by
:data:`SLACK_BYTES`. Parameters may take twice the file's bytes (half-precision weights are loaded into
float32 models).
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor, nn

from nc_audit.core.errors import InputError

#: Memory a model may take beyond twice its checkpoint's tensors (unsaved buffers, a fresh head).
SLACK_BYTES = 256 * 2**20


def tensor_bytes(tensors: Iterable[object]) -> int:
    """Bytes of the tensors among ``tensors`` (meta tensors included, by their shape and dtype)."""
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, Tensor))


def model_bytes(model: nn.Module) -> int:
    """Bytes the model's parameters and buffers take once allocated (a meta model included)."""
    return tensor_bytes(model.parameters()) + tensor_bytes(model.buffers())


def limit_for(file_bytes: int) -> int:
    """The most bytes a model rebuilt for a checkpoint holding ``file_bytes`` of tensors may take."""
    return 2 * file_bytes + SLACK_BYTES


def check_model_size(model: nn.Module, file_bytes: int, where: str, what: str) -> None:
    """InputError naming ``where`` when ``model`` (built on the meta device) would take more memory than
    its checkpoint's tensors justify (:func:`limit_for`)."""
    needed, limit = model_bytes(model), limit_for(file_bytes)
    if needed > limit:
        raise InputError(
            f"{where}: {what} describes a model of {needed / 2**20:,.0f} MiB, but the checkpoint holds "
            f"{file_bytes / 2**20:,.1f} MiB of weights (at most {limit / 2**20:,.0f} MiB would be allocated); "
            "nc-audit does not build it"
        )
