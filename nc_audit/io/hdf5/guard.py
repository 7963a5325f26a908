"""Untrusted HDF5 files: where a dataset's bytes really come from, and how big it really is.

HDF5 can make a dataset read bytes from outside the file: raw *external storage* (any file, e.g.
``/etc/passwd`` or ``/proc/self/environ``), *external links* to other HDF5 files, and *virtual
datasets* (VDS) whose sources are other datasets, in this file or in others (a missing or unmapped
source silently reads as the fill value; a VDS that is its own source crashes HDF5). It can also
declare a dataset far larger than the file (unwritten chunks read as the fill value), which turns a
3 KB file into a memory or time bomb.

By default every dataset nc-audit reads must live in the dump itself: :func:`lookup`
(:mod:`nc_audit.io.hdf5.links`) walks a path link by link without following external links (soft links
are followed with a hop limit, so loops are an error), and :func:`check_dataset` follows every
indirection to its final storage before one byte is read (:mod:`nc_audit.io.hdf5.graph`: external
storage, VDS sources of this or other files, cycles, unmapped regions, unwritten chunks, sizes), then
refuses chunks too large for memory and datasets too finely chunked to stream.
``--allow-external-data`` (:func:`external_data_allowed`) lets trusted multi-file dumps through:
external links and sources are then followed, but must be regular files that exist.

Messages name the dump, the dataset and the target, and never echo bytes read from the target.
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py

from nc_audit.core.errors import InputError, first_line
from nc_audit.io.guards.files import human_bytes
from nc_audit.io.hdf5.attrs import variable_length
from nc_audit.io.hdf5.graph import resolve_storage
from nc_audit.io.hdf5.links import OPT_IN, external_allowed, external_data_allowed, lookup

__all__ = [
    "OPT_IN",
    "check_dataset",
    "dataset_at",
    "external_allowed",
    "external_data_allowed",
    "lookup",
    "read_small",
]

#: Largest stored chunk accepted: HDF5 inflates a whole chunk to read any part of it.
MAX_CHUNK_BYTES = 256 * 2**20
#: A dataset of more than this many stored chunks, each smaller than TINY_CHUNK_BYTES, costs one HDF5
#: lookup per few bytes: it is refused with a repack hint instead of streamed for minutes.
MAX_TINY_CHUNKS = 65536
TINY_CHUNK_BYTES = 1024


def _chunk_layout(dataset: h5py.Dataset, name: str, where: Path | str) -> None:
    """Refuse chunks too large to inflate and datasets too finely chunked to stream."""
    if dataset.is_virtual or dataset.chunks is None:
        return
    shape = tuple(int(n) for n in dataset.shape or ())
    itemsize = dataset.dtype.itemsize
    chunk = tuple(int(n) for n in dataset.chunks)
    chunk_bytes = math.prod(chunk) * itemsize
    total = math.prod(math.ceil(n / c) for n, c in zip(shape, chunk, strict=True))
    if chunk_bytes > MAX_CHUNK_BYTES:
        raise InputError(
            f"{where}: {name} is stored in chunks of {human_bytes(chunk_bytes)}, more than the "
            f"{human_bytes(MAX_CHUNK_BYTES)} nc-audit inflates at once; rewrite it with smaller chunks"
        )
    if total > MAX_TINY_CHUNKS and chunk_bytes < TINY_CHUNK_BYTES:
        rows = max(1, (1 << 20) // max(1, itemsize * math.prod(shape[1:])))
        layout_hint = "x".join(map(str, (min(rows, shape[0]), *shape[1:])))
        raise InputError(
            f"{where}: {name} is stored in {total} chunks of {chunk_bytes} bytes each, too finely chunked "
            f"to stream (one HDF5 lookup per chunk); repack it with row chunks, e.g. "
            f"h5repack -l {name.lstrip('/')}:CHUNK={layout_hint} IN.h5 OUT.h5"
        )


def check_dataset(dataset: h5py.Dataset, name: str, where: Path | str) -> None:
    """Refuse a dataset whose bytes come from outside the dump (unless allowed), through any chain of
    indirections, or that declares rows it does not store; ``name`` ('/features') and ``where`` (the dump) name it in messages."""
    resolve_storage(dataset, name, where)
    _chunk_layout(dataset, name, where)


def dataset_at(handle: h5py.File, path: str, where: Path | str | None = None) -> h5py.Dataset | None:
    """:func:`lookup` plus :func:`check_dataset`: the checked dataset at ``path``, None when absent,
    InputError when ``path`` holds a group."""
    where = where or handle.filename
    node = lookup(handle, path, where)
    if node is None:
        return None
    if not isinstance(node, h5py.Dataset):
        raise InputError(f"{where}: {path} must be a dataset, not a group")
    check_dataset(node, path, where)
    return node


def read_small(dataset: h5py.Dataset, name: str, where: Path | str, limit: int = 256 * 2**20) -> object:
    """The whole of a small dataset (a head, labels of a split) after :func:`check_dataset`-style
    checks; a dataset declaring more than ``limit`` bytes, or holding variable-length values (whose
    bytes are not bounded by its declared size), is refused before reading."""
    if variable_length(dataset.id.get_type()):
        raise InputError(f"{where}: {name} holds variable-length values ({dataset.dtype}); numbers expected")
    declared = math.prod(int(n) for n in dataset.shape or ()) * dataset.dtype.itemsize
    if declared > limit:
        raise InputError(
            f"{where}: {name} declares {human_bytes(declared)}, more than the {human_bytes(limit)} nc-audit "
            "reads at once"
        )
    try:
        return dataset[()]
    except (OSError, RuntimeError, ValueError, TypeError) as error:
        raise InputError(f"{where}: cannot read {name} ({first_line(error)})") from None
