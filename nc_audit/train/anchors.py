"""CMA anchors: the C×d matrix of class embeddings that each class's features are pulled onto.

Default: a detached copy of the head rows W (C, d) taken once, before the first step, and stored in
every training checkpoint. A fixed copy keeps the target still while the model moves; live head rows
would let the CMA term drag the head towards the features (a different objective, and with λ = 1 a
trivial one). ``--anchors PATH`` replaces them with the user's matrix (e.g. CLIP text embeddings):
.safetensors (a single tensor, or the key ``anchors``), .npy, or HDF5 (dataset ``anchors``).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from nc_audit.core.errors import InputError
from nc_audit.io.data.npy_header import check_npy_header
from nc_audit.io.guards.files import regular_file
from nc_audit.io.hdf5.guard import check_dataset, lookup, read_small

ANCHOR_SUFFIXES: tuple[str, ...] = (".safetensors", ".npy", ".h5", ".hdf5")
ANCHOR_KEY = "anchors"


def _read_safetensors(path: Path) -> torch.Tensor:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            keys = list(handle.keys())
            anchors: torch.Tensor
            if ANCHOR_KEY in keys:
                anchors = handle.get_tensor(ANCHOR_KEY)
                return anchors
            if len(keys) == 1:
                anchors = handle.get_tensor(keys[0])
                return anchors
    except (SafetensorError, OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable safetensors file ({error})") from None
    raise InputError(
        f"{path}: holds {len(keys)} tensors ({', '.join(keys[:6]) or 'none'}); "
        f"store a single tensor or name it {ANCHOR_KEY!r}"
    )


def _read_npy(path: Path) -> torch.Tensor:
    with path.open("rb") as stream:  # the header's shape checked before numpy allocates it
        check_npy_header(stream, path.stat().st_size, str(path))
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable .npy array ({error})") from None
    return torch.from_numpy(np.asarray(array))


def _read_hdf5(path: Path) -> torch.Tensor:
    try:
        with h5py.File(path, "r") as handle:
            item = lookup(handle, f"/{ANCHOR_KEY}", path)  # never through a link to another file
            if not isinstance(item, h5py.Dataset):
                found = ", ".join(handle.keys()) or "nothing"
                raise InputError(f"{path}: needs a dataset /{ANCHOR_KEY} (found: {found})")
            check_dataset(item, f"/{ANCHOR_KEY}", path)
            return torch.from_numpy(np.asarray(read_small(item, f"/{ANCHOR_KEY}", path)))
    except OSError as error:
        raise InputError(f"{path}: not a readable HDF5 file ({error})") from None


def load_anchors(path: Path | str, num_classes: int, feature_dim: int) -> torch.Tensor:
    """The user's anchor matrix as float64 (C, d); another shape or a non-finite value is an InputError."""
    path = Path(path)
    regular_file(path, "anchor file", missing=f"--anchors {path}: no such file")
    suffix = path.suffix.lower()
    readers = {".safetensors": _read_safetensors, ".npy": _read_npy, ".h5": _read_hdf5, ".hdf5": _read_hdf5}
    if suffix not in readers:
        raise InputError(f"--anchors {path}: unknown type '{suffix}' (expected {', '.join(ANCHOR_SUFFIXES)})")
    anchors = readers[suffix](path)
    expected = (num_classes, feature_dim)
    if tuple(anchors.shape) != expected:
        raise InputError(
            f"--anchors {path}: shape {tuple(anchors.shape)} does not fit the head: expected (C, d) = {expected}"
        )
    if not (anchors.is_floating_point() or anchors.dtype in (torch.int32, torch.int64)):
        raise InputError(f"--anchors {path}: values must be numbers, found {anchors.dtype}")
    anchors = anchors.to(torch.float64)  # (C, d)
    if not bool(torch.isfinite(anchors).all()):
        raise InputError(f"--anchors {path}: holds NaN or Inf values")
    if bool((anchors.norm(dim=1) == 0).any()):
        raise InputError(f"--anchors {path}: a row is all zeros; every class needs a direction")
    return anchors


def head_anchors(head_weight: torch.Tensor) -> torch.Tensor:
    """The default anchors: a detached float64 copy of the head rows at the start. (C, d) -> (C, d)."""
    return head_weight.detach().to(torch.float64).clone()  # (C, d)
