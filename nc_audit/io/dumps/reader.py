"""HDF5 feature dumps (format ``nc-audit-features/1``, docs/DESIGN.md): open, validate, stream in chunks.

The minimal form any user can write with h5py — ``/features`` (N, d) float16/32/64 and ``/labels``
(N,) integer — is accepted as is. nc-audit's own dumps add split groups (``/train/features``, ...),
``/logits``, ``/head/weight`` and ``/head/bias``, and root attributes. Nothing here reads a whole
dataset: features are sliced chunk by chunk along N.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from nc_audit.core.errors import InputError, first_line
from nc_audit.core.limits import check_head_memory, head_memory
from nc_audit.io.checkpoints.head_checks import array_dtype_problem
from nc_audit.io.guards.files import regular_file
from nc_audit.io.hdf5.attrs import as_text, attr_names, attr_size_problem, heap_bound
from nc_audit.io.hdf5.guard import dataset_at, lookup, read_small

if TYPE_CHECKING:  # torch is imported where tensors are made, so the CLI can check a dump without it
    import torch

    from nc_audit.io.checkpoints.load import Head
    from nc_audit.io.dumps.chunks import ChunkReader
    from nc_audit.io.dumps.memory import MemoryRows
#: File suffixes read as feature dumps.
DUMP_SUFFIXES = (".h5", ".hdf5", ".hdf")
#: Target bytes of one chunk of features as stored; rows per chunk follow from the dtype and d.
CHUNK_BYTES = 32 * 2**20
#: Largest read buffer of features, whatever --chunk-rows says.
MAX_READ_BYTES = 256 * 2**20
#: Longest root attribute kept (checkpoint_path, dataset, ...); longer ones are cut.
MAX_ATTR_CHARS = 1024
#: Longest head name accepted (the /head group's ``name`` attribute).
MAX_HEAD_NAME_CHARS = 256


@dataclass(frozen=True)
class SplitInfo:
    """Where one split's arrays live inside a dump, and their shapes."""

    path: Path
    split: str | None  # None: the minimal root-level form
    num_samples: int
    feature_dim: int
    feature_dtype: str
    #: Every feature read from this split is multiplied by this power of two (see :func:`feature_scale`).
    scale: float = 1.0
    #: The rows themselves when they are held in memory (``path`` then only names them in messages):
    #: :func:`open_chunks` reads them instead of a file (:mod:`nc_audit.io.dumps.memory`).
    memory: MemoryRows | None = None

    def group(self) -> str:
        return f"/{self.split}" if self.split else ""


def dump_splits(handle: h5py.File) -> list[str]:
    """Names of the split groups holding features and labels (empty for the minimal form). Links are
    resolved with :func:`nc_audit.io.hdf5.guard.lookup` (external ones only when allowed)."""
    splits = []
    for name in handle:
        if name in ("head", "features", "labels", "logits"):
            continue
        try:
            item = lookup(handle, f"/{name}")
            if isinstance(item, h5py.Group) and all(
                lookup(handle, f"/{name}/{key}") is not None for key in ("features", "labels")
            ):
                splits.append(name)
        except InputError:
            continue  # a link nc-audit does not follow: an error only if that split is asked for
    return splits


def open_dump(path: Path | str) -> h5py.File:
    """Open a dump read-only; a missing, non-regular, truncated or non-HDF5 file is an InputError."""
    path = Path(path)
    regular_file(path, "feature dump", missing=f"{path}: no such feature dump")
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
        if split is None and not handle.id.links.exists(b"features"):  # does not follow the link
            split = "train" if "train" in splits else (splits[0] if splits else None)
        if split is not None and split not in splits and handle.id.links.exists(split.encode()):
            lookup(handle, f"/{split}/features", path)  # a link that is refused says why
        if split is not None and split not in splits:
            if not splits and split in ("train", "all"):
                split = None
            else:
                available = ", ".join(splits) if splits else "none (the file has only /features and /labels)"
                raise InputError(f"{path}: no split '{split}'; splits in the file: {available}")
        prefix = f"/{split}" if split else ""
        features, _ = _split_datasets(handle, path, prefix)
        return SplitInfo(path, split, int(features.shape[0]), int(features.shape[1]), str(features.dtype))


def _split_datasets(handle: h5py.File, path: Path, prefix: str) -> tuple[h5py.Dataset, h5py.Dataset]:
    """The checked /features and /labels datasets of one split (see :mod:`nc_audit.io.hdf5.guard`)."""
    for key in ("features", "labels"):
        node = lookup(handle, f"{prefix}/{key}", path)
        if node is None:
            keys = ", ".join(handle.keys()) or "nothing"
            raise InputError(f"{path}: expected /features and /labels datasets (found: {keys})")
        if not isinstance(node, h5py.Dataset):
            raise InputError(f"{path}: {prefix}/features and {prefix}/labels must be datasets, not groups")
    features = dataset_at(handle, f"{prefix}/features", path)
    labels = dataset_at(handle, f"{prefix}/labels", path)
    assert features is not None and labels is not None
    _check_arrays(path, prefix, features, labels)
    return features, labels


def _check_arrays(path: Path, prefix: str, features: h5py.Dataset, labels: h5py.Dataset) -> None:
    if features.ndim != 2:
        raise InputError(f"{path}: {prefix}/features must be 2-D (N, d), found shape {features.shape}")
    if array_dtype_problem(features.dtype) is not None:
        raise InputError(
            f"{path}: {prefix}/features must be float16/32/64, found {array_dtype_problem(features.dtype)}"
        )
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


def _head_array(handle: h5py.File, path: Path, name: str) -> np.ndarray | None:
    """/head/weight or /head/bias as float64, checked (real floats, in the file, of a sane size)."""
    dataset = dataset_at(handle, name, path)
    if dataset is None:
        return None
    problem = array_dtype_problem(dataset.dtype)
    if problem is not None:
        raise InputError(
            f"{path}: {name} holds {problem}; a head must be real floating point (float16/32/64)"
        )
    check_head_memory(path, name, tuple(int(n) for n in dataset.shape or ()))
    return np.asarray(read_small(dataset, name, path, head_memory()), dtype=np.float64)


def check_head(path: Path | str) -> tuple[np.ndarray, np.ndarray | None, str] | None:
    """The head stored in a dump as NumPy float64 arrays (weight (C, d), bias (C,) or None, name), or
    None when the dump has no /head/weight; every problem is an InputError naming the dump and the
    dataset. Needs no torch (the command line checks a dump before loading it)."""
    path = Path(path)
    with open_dump(path) as handle:
        weight = _head_array(handle, path, "/head/weight")
        if weight is None:
            return None
        bias = _head_array(handle, path, "/head/bias")
        group = lookup(handle, "/head", path)
        name = _head_name(handle, group, path) if group is not None else "head"
    if weight.ndim != 2:
        raise InputError(f"{path}: /head/weight must be 2-D (C, d), found shape {tuple(weight.shape)}")
    if bias is not None:
        C = weight.shape[0]
        if bias.size != C or sum(size != 1 for size in bias.shape) > 1 or bias.ndim == 0:
            raise InputError(
                f"{path}: /head/bias has shape {tuple(bias.shape)}; a head of {C} classes needs ({C},) "
                f"(or ({C}, 1))"
            )
        bias = bias.reshape(C)
    return weight, bias, name


def _head_name(handle: h5py.File, group: h5py.Group, path: Path) -> str:
    """The /head group's ``name`` attribute ('head' when absent), its size bounded before reading."""
    if "name" not in group.attrs:
        return "head"
    problem = attr_size_problem(group, "name", heap_bound(handle))
    if problem is not None:
        raise InputError(f"{path}: the head's name attribute {problem}; refused before reading it")
    try:
        name = as_text(group.attrs["name"])
    except (OSError, TypeError, ValueError) as error:
        raise InputError(f"{path}: cannot read the head's name attribute ({first_line(error)})") from None
    if len(name) > MAX_HEAD_NAME_CHARS:
        raise InputError(
            f"{path}: the head's name attribute holds {len(name)} characters (at most {MAX_HEAD_NAME_CHARS})"
        )
    return name


def read_head(path: Path | str) -> Head | None:
    """The head stored in a dump (``/head/weight``, optional ``/head/bias``), or None."""
    import torch

    from nc_audit.io.checkpoints.load import Head

    found = check_head(path)
    if found is None:
        return None
    weight, bias, name = found
    return Head(name, torch.from_numpy(weight), None if bias is None else torch.from_numpy(bias))


def read_attrs(path: Path | str) -> dict[str, str]:
    """The dump's root attributes as strings (format, checkpoint_sha256, dataset, created_by, ...); long
    values are cut to MAX_ATTR_CHARS; attributes whose size is not bounded before reading (large,
    arrays of variable-length values, variable-length in a file mostly outside its datasets:
    :mod:`nc_audit.io.hdf5.attrs`) are skipped."""
    attrs = {}
    with open_dump(path) as handle:
        heap = heap_bound(handle)
        for key in attr_names(handle):
            try:
                if attr_size_problem(handle, key, heap) is not None:
                    continue  # its size is not bounded before reading: not one nc-audit writes
                attrs[key] = as_text(handle.attrs[key])[:MAX_ATTR_CHARS]
            except (OSError, TypeError, ValueError, KeyError):
                continue  # an attribute h5py cannot decode is not one nc-audit writes
    return attrs


def default_chunk_rows(feature_dim: int, itemsize: int = 4) -> int:
    """Rows per chunk so that one chunk of stored features is about CHUNK_BYTES (at least one row)."""
    return max(1, CHUNK_BYTES // max(1, feature_dim * itemsize))


def bounded_chunk_rows(chunk_rows: int | None, feature_dim: int, itemsize: int = 4) -> int:
    """Rows per chunk: ``chunk_rows`` (default: :func:`default_chunk_rows`), but never more than
    MAX_READ_BYTES of features, so a read buffer is bounded in bytes whatever the rows ask."""
    most = max(1, MAX_READ_BYTES // max(1, feature_dim * itemsize))
    return max(1, min(chunk_rows or default_chunk_rows(feature_dim, itemsize), most))


@contextmanager
def open_chunks(
    info: SplitInfo, chunk_rows: int | None = None, rows: tuple[int, int] | None = None, direct: bool = True
) -> Iterator[ChunkReader]:
    """A ChunkReader over one split (rows start..stop, chunks of at most ``chunk_rows`` rows; a plain
    dump is read straight from its bytes, ``direct``, see :mod:`nc_audit.io.hdf5.direct`), open until
    the ``with`` block ends."""
    from nc_audit.io.dumps.chunks import ChunkReader

    if info.memory is not None:  # rows held in memory: the same chunks, no file
        step = bounded_chunk_rows(chunk_rows, info.feature_dim, info.memory.features.dtype.itemsize)
        with info.memory.reader(step, rows or (0, info.num_samples), info.scale) as reader:
            yield reader
        return
    with open_dump(info.path) as handle:
        features, labels = _split_datasets(handle, Path(info.path), info.group())
        step = bounded_chunk_rows(chunk_rows, info.feature_dim, features.dtype.itemsize)
        with ChunkReader(
            info.path, features, labels, rows or (0, info.num_samples), step, direct, info.scale
        ) as reader:
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


#: float64 features whose magnitude lies within 2**±SAFE_EXPONENT are read as they are; others are
#: rescaled by a power of two (their squares and sums would overflow or underflow float64).
SAFE_EXPONENT = 64
#: Rows the magnitude of a split is taken from (its first ones).
SCALE_PROBE_ROWS = 4096


def feature_magnitude(info: SplitInfo, rows: tuple[int, int] | None = None) -> float:
    """The largest finite |value| among the first SCALE_PROBE_ROWS of ``rows`` (default: the split's
    first rows); 0.0 for float16/32 features, whose squares always fit float64 (see :func:`scale_for`)."""
    if np.dtype(info.feature_dtype).itemsize < 8:
        return 0.0
    start, stop = rows if rows is not None else (0, info.num_samples)
    stop = min(stop, start + SCALE_PROBE_ROWS)
    if stop <= start:
        return 0.0
    with open_chunks(info, SCALE_PROBE_ROWS, (start, stop)) as reader:
        chunk = next(iter(reader))
        values = reader.features(chunk).numpy()
    finite = np.abs(values[np.isfinite(values)])
    return float(finite.max()) if finite.size else 0.0


def scale_for(magnitude: float) -> float:
    """A power of two that brings float64 features of extreme magnitude near 1: 2**-e for a largest
    |value| 2**e outside 2**±SAFE_EXPONENT, else 1.

    Multiplying by a power of two is exact in floating point, and every statistic nc-audit reports is
    scale-invariant once the head's bias gets the same factor, so ×1e-200 or ×1e154 features give the
    metrics of the unscaled ones (instead of squares that underflow to 0 or overflow to inf)."""
    if magnitude == 0.0 or not math.isfinite(magnitude):
        return 1.0
    exponent = math.frexp(magnitude)[1]
    if abs(exponent) <= SAFE_EXPONENT:
        return 1.0
    return math.ldexp(1.0, max(-1023, min(1023, -exponent)))


def feature_scale(info: SplitInfo) -> float:
    """:func:`scale_for` the magnitude of the split's first rows (one process; a measurement under
    torchrun combines each rank's own rows, nc_audit/measurement/collect.py)."""
    return scale_for(feature_magnitude(info))
