"""Device names as users type them ('auto', 'cpu', 'cuda', 'cuda:N') → torch devices, in one place."""

from __future__ import annotations

from typing import TypedDict

import torch

from nc_audit.core.errors import InputError


class TensorPlacement(TypedDict):
    """The keyword arguments ``dtype=`` and ``device=`` of torch.zeros, Tensor.to, ... (``**placement``)."""

    dtype: torch.dtype
    device: torch.device


def resolve_device(device: torch.device | str | None = "auto", local_rank: int | None = None) -> torch.device:
    """'auto' (or None) → CUDA when available, else CPU; 'cuda' without a GPU is an InputError.

    ``local_rank`` (under torchrun) turns a bare 'cuda' into this rank's GPU, ``cuda:LOCAL_RANK``.
    """
    text = "auto" if device is None else str(device)
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text != "cpu" and not text.startswith("cuda"):
        raise InputError(f"--device {text}: expected auto, cpu, cuda or cuda:N")
    try:
        resolved = torch.device(text)
    except RuntimeError:
        raise InputError(f"--device {text}: expected auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is available (use --device cpu or auto)")
        if resolved.index is None and local_rank is not None:
            resolved = torch.device("cuda", local_rank % torch.cuda.device_count())
    return resolved
