"""HDF5 feature dumps (format ``nc-audit-features/1``, docs/DESIGN.md): open, validate, stream in chunks.

The minimal form any user can write with h5py — ``/features`` (N, d) float16/32/64 and ``/labels``
(N,) integer — is accepted as is. nc-audit's own dumps add split groups (``/train/features``, ...),
``/logits``, ``/head/weight`` and ``/head/bias``, and root attributes. Nothing here reads a whole
dataset: features are sliced chunk by chunk along N.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from nc_audit.core.errors import InputError, first_line
from nc_audit.io.checkpoints import Head
from nc_audit.io.chunks import ChunkReader

#: Target bytes of one chunk of features as stored; rows per chunk follow from the dtype and d.
CHUNK_BYTES = 32 * 2**20


@dataclass(frozen=True)
class SplitInfo:
    """Where one split's arrays live inside a dump, and their shapes."""

    path: Path
    split: str | None  # None: the minimal root-level form
    num_samples: int
    feature_dim: int
    feature_dtype: str

    def group(self) -> str:
        return f"/{self.split}" if self.split else ""


def dump_splits(handle: h5py.File) -> list[str]:
    """Names of the split groups holding features and labels (empty for the minimal form)."""
    return [
        name
        for name, item in handle.items()
        if isinstance(item, h5py.Group) and "features" in item and "labels" in item
    ]


def open_dump(path: Path | str) -> h5py.File:
    """Open a dump read-only; a missing, truncated or non-HDF5 file is an InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such feature dump")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        reason = "truncated or damaged HDF5 file" if h5py.is_hdf5(path) else "not an HDF5 file"
        raise InputError(f"{path}: {reason} ({first_line(error)})") from None


def resolve_split(path: Path | str, split: str | None) -> SplitInfo:
    """Validate the dump's layout for ``split`` (None: ``train`` when split groups exist, else the root)."""
    path = Path(path)
    with open_dump(path) as handle:
        splits = dump_splits(handle)
        if split is None and "features" not in handle:
            split = "train" if "train" in splits else (splits[0] if splits else None)
        if split is not None and split not in splits:
            if not splits and split in ("train", "all"):
                split = None
            else:
                available = ", ".join(splits) if splits else "none (the file has only /features and /labels)"
                raise InputError(f"{path}: no split '{split}'; splits in the file: {available}")
        prefix = f"/{split}" if split else ""
        if f"{prefix}/features" not in handle or f"{prefix}/labels" not in handle:
            keys = ", ".join(handle.keys()) or "nothing"
            raise InputError(f"{path}: expected /features and /labels datasets (found: {keys})")
        features, labels = handle[f"{prefix}/features"], handle[f"{prefix}/labels"]
        _check_arrays(path, prefix, features, labels)
        return SplitInfo(path, split, int(features.shape[0]), int(features.shape[1]), str(features.dtype))


def _check_arrays(path: Path, prefix: str, features: h5py.Dataset, labels: h5py.Dataset) -> None:
    if not isinstance(features, h5py.Dataset) or not isinstance(labels, h5py.Dataset):
        raise InputError(f"{path}: {prefix}/features and {prefix}/labels must be datasets, not groups")
    if features.ndim != 2:
        raise InputError(f"{path}: {prefix}/features must be 2-D (N, d), found shape {features.shape}")
    if features.dtype.kind != "f":
        raise InputError(f"{path}: {prefix}/features must be float16/32/64, found {features.dtype}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise InputError(
            f"{path}: {prefix}/labels must be a 1-D integer array, found {labels.dtype} {labels.shape}"
        )
    if labels.shape[0] != features.shape[0]:
        raise InputError(
            f"{path}: {prefix}/features has {features.shape[0]} rows but {prefix}/labels has {labels.shape[0]}"
        )
    if features.shape[0] == 0:
        raise InputError(f"{path}: the dump is empty ({prefix or '/'} holds 0 samples)")


def read_head(path: Path | str) -> Head | None:
    """The head stored in a dump (``/head/weight``, optional ``/head/bias``), or None."""
    path = Path(path)
    with open_dump(path) as handle:
        if "head/weight" not in handle:
            return None
        weight = torch.from_numpy(np.asarray(handle["head/weight"][...], dtype=np.float64))
        bias = None
        if "head/bias" in handle:
            bias = torch.from_numpy(np.asarray(handle["head/bias"][...], dtype=np.float64))
        name = str(handle["head"].attrs.get("name", "head"))
    if weight.ndim != 2:
        raise InputError(f"{path}: /head/weight must be 2-D (C, d), found shape {tuple(weight.shape)}")
    return Head(name, weight, bias)


def read_attrs(path: Path | str) -> dict[str, str]:
    """The dump's root attributes as strings (format, checkpoint_sha256, dataset, created_by, ...)."""
    with open_dump(path) as handle:
        return {key: _as_str(value) for key, value in handle.attrs.items()}


def default_chunk_rows(feature_dim: int, itemsize: int = 4) -> int:
    """Rows per chunk so that one chunk of stored features is about CHUNK_BYTES."""
    return max(256, CHUNK_BYTES // max(1, feature_dim * itemsize))


@contextmanager
def open_chunks(
    info: SplitInfo, chunk_rows: int | None = None, rows: tuple[int, int] | None = None, direct: bool = True
) -> Iterator[ChunkReader]:
    """A ChunkReader over one split (rows start..stop, chunks of at most ``chunk_rows`` rows; a plain
    dump is read straight from its bytes, ``direct``, see :mod:`nc_audit.io.direct`), open until
    the ``with`` block ends."""
    with open_dump(info.path) as handle:
        features = handle[f"{info.group()}/features"]
        labels = handle[f"{info.group()}/labels"]
        step = chunk_rows or default_chunk_rows(info.feature_dim, features.dtype.itemsize)
        with ChunkReader(info.path, features, labels, rows or (0, info.num_samples), step, direct) as reader:
            yield reader


def iter_chunks(
    info: SplitInfo, chunk_rows: int | None = None, rows: tuple[int, int] | None = None, direct: bool = True
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (features, labels) chunks in file order, as stored (features keep their dtype, in native
    byte order).

    ``rows`` restricts the pass to a half-open row range (a shard, e.g. one rank's slice). Chunks hold at
    most ``chunk_rows`` rows; when the dump is read directly (see :func:`open_chunks`) no chunk crosses
    a stored HDF5 chunk. Every chunk is a fresh, writable array that nothing else refers to.
    """
    with open_chunks(info, chunk_rows, rows, direct) as reader:
        for chunk in reader:
            yield reader.features(chunk), chunk.labels


def _as_str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
