"""Untrusted HDF5 files: where a dataset's bytes really come from, and how big it really is.

HDF5 can make a dataset read bytes from outside the file: raw *external storage* (any file, e.g.
``/etc/passwd`` or ``/proc/self/environ``), *external links* to other HDF5 files, and *virtual
datasets* (VDS) whose sources are other files (a missing source silently reads as the fill value).
It can also declare a dataset far larger than the file (a sparse dataset: unwritten chunks read as
the fill value), which turns a 3 KB file into a memory or time bomb.

By default every dataset nc-audit reads must live in the dump itself: :func:`lookup` walks a path
link by link without following external links (soft links are followed with a hop limit, so loops
are an error), and :func:`check_dataset` refuses external storage, VDS sources in other files,
missing VDS sources, sparse datasets declaring far more than the file holds, chunks too large for
memory and datasets too finely chunked to stream. ``--allow-external-data`` (:func:`external_data_allowed`) lets trusted multi-file dumps
through: external links and sources are then followed, but must be regular files that exist.

Messages name the dump, the dataset and the target, and never echo bytes read from the target.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

import h5py

from nc_audit.core.errors import InputError, first_line
from nc_audit.io.files import describe_mode, human_bytes, is_pseudo_file

#: The command-line flag that lets a dump read data from other files.
OPT_IN = "--allow-external-data"
#: Soft links followed, in all, while resolving one path (a loop stops here).
MAX_LINK_HOPS = 32
#: A dataset with unwritten rows may declare at most this many times its file's size, plus SPARSE_SLACK.
MAX_SPARSE_EXPANSION = 16
SPARSE_SLACK = 64 * 2**20
#: Largest stored chunk accepted: HDF5 inflates a whole chunk to read any part of it.
MAX_CHUNK_BYTES = 256 * 2**20
#: A dataset of more than this many stored chunks, each smaller than TINY_CHUNK_BYTES, costs one HDF5
#: lookup per few bytes: it is refused with a repack hint instead of streamed for minutes.
MAX_TINY_CHUNKS = 65536
TINY_CHUNK_BYTES = 1024

_ALLOWED: ContextVar[bool] = ContextVar("nc_audit_allow_external_data", default=False)


@contextlib.contextmanager
def external_data_allowed(allowed: bool = True) -> Iterator[None]:
    """Within the block, dumps may read data from other files (trusted multi-file dumps)."""
    token = _ALLOWED.set(bool(allowed))
    try:
        yield
    finally:
        _ALLOWED.reset(token)


def external_allowed() -> bool:
    """Whether external links, external storage and VDS sources in other files are followed now."""
    return _ALLOWED.get()


def _refusal(where: Path | str, name: str, what: str, target: str) -> InputError:
    return InputError(
        f"{where}: {name} {what} {target}; refused: a dump is read only from its own file "
        f"(pass {OPT_IN} for a trusted multi-file dump)"
    )


def _beside(where: Path | str, name: str) -> str:
    """A file named by a link or a source, as a path (relative names are taken from the dump's folder)."""
    return name if os.path.isabs(name) else os.path.join(os.path.dirname(os.path.abspath(where)), name)


def _require_data_file(where: Path | str, name: str, what: str, target: str, *, hdf5: bool) -> None:
    """An external target the opt-in allows must be an existing regular file (HDF5 when ``hdf5``)."""
    path = _beside(where, target)
    try:
        info = os.stat(path)
    except OSError:
        raise InputError(f"{where}: {name} {what} {target}, which does not exist") from None
    if not os.path.isfile(path) or is_pseudo_file(path):
        kind = "a /proc or /sys pseudo-file" if is_pseudo_file(path) else describe_mode(info.st_mode)
        raise InputError(f"{where}: {name} {what} {target}, which is not a regular file ({kind})")
    if hdf5 and not h5py.is_hdf5(path):
        raise InputError(f"{where}: {name} {what} {target}, which is not an HDF5 file")


class _Walker:
    """Resolves one path inside a file, counting soft-link hops."""

    def __init__(self, handle: h5py.File, where: Path | str, path: str) -> None:
        self.handle, self.where, self.hops, self.path = handle, where, 0, path

    def resolve(self, path: str) -> h5py.Group | h5py.Dataset | None:
        node: h5py.Group | h5py.Dataset = self.handle["/"]
        current = ""
        for part in (p for p in path.split("/") if p and p != "."):
            if not isinstance(node, h5py.Group):
                return None
            node = self._step(node, part, f"{current}/{part}")
            if node is None:
                return None
            current = f"{current}/{part}"
        return node

    def _step(self, group: h5py.Group, part: str, full: str) -> h5py.Group | h5py.Dataset | None:
        key = part.encode("utf-8", "surrogateescape")
        if not group.id.links.exists(key):
            return None
        kind = group.id.links.get_info(key).type
        if kind == h5py.h5l.TYPE_HARD:
            return group[part]
        if kind == h5py.h5l.TYPE_SOFT:
            target = group.id.links.get_val(key).decode("utf-8", "replace")
            self.hops += 1
            if self.hops > MAX_LINK_HOPS:
                raise InputError(
                    f"{self.where}: {self.path} leads into a loop of soft links (at {full}, after "
                    f"{MAX_LINK_HOPS} hops)"
                )
            parent = full.rsplit("/", 1)[0]
            node = self.resolve(target if target.startswith("/") else f"{parent}/{target}")
            if node is None:
                raise InputError(f"{self.where}: {full} is a soft link to {target}, which does not exist")
            return node
        if kind == h5py.h5l.TYPE_EXTERNAL:
            file_name, object_name = (v.decode("utf-8", "replace") for v in group.id.links.get_val(key))
            target = f"{file_name}:{object_name}"
            if not external_allowed():
                raise _refusal(self.where, full, "is an external link to", target)
            _require_data_file(self.where, full, "is an external link to", file_name, hdf5=True)
            try:
                return group[part]
            except (KeyError, OSError, RuntimeError, ValueError) as error:
                raise InputError(
                    f"{self.where}: cannot follow the external link {full} to {target} ({first_line(error)})"
                ) from None
        raise InputError(
            f"{self.where}: {full} is a user-defined link (type {kind}); nc-audit does not follow it"
        )


def lookup(handle: h5py.File, path: str, where: Path | str | None = None) -> h5py.Group | h5py.Dataset | None:
    """The object at ``path`` ('/train/features') in ``handle``, or None when nothing is there.

    Hard links are followed, soft links with a hop limit (a loop is an InputError), external links only
    when :func:`external_allowed` (else an InputError naming the link and its target)."""
    return _Walker(handle, where or handle.filename, path).resolve(path)


def _external_storage(dataset: h5py.Dataset, name: str, where: Path | str) -> None:
    files = [entry[0] for entry in dataset.external or []]
    if not files:
        return
    shown = ", ".join(dict.fromkeys(files))
    if not external_allowed():
        raise _refusal(where, name, "keeps its bytes in the external file(s)", shown)
    for target in dict.fromkeys(files):
        _require_data_file(where, name, "keeps its bytes in", target, hdf5=False)


def _virtual_sources(dataset: h5py.Dataset, name: str, where: Path | str) -> None:
    if not dataset.is_virtual:
        return
    own = os.path.realpath(dataset.file.filename)
    for source in dataset.virtual_sources():
        target = source.file_name
        if target == "." or os.path.realpath(_beside(where, target)) == own:
            continue
        if not external_allowed():
            raise _refusal(where, name, "is a virtual dataset reading from", target)
        path = _beside(where, target)
        if not os.path.exists(path):
            raise InputError(
                f"{where}: {name} is a virtual dataset whose source {target} is missing "
                "(its rows would read as the fill value)"
            )
        _require_data_file(where, name, "is a virtual dataset reading from", target, hdf5=True)


def _stored_size(dataset: h5py.Dataset, name: str, where: Path | str) -> None:
    """Refuse sparse datasets (unwritten rows read as the fill value), giant and tiny chunks."""
    if dataset.is_virtual or dataset.external:
        return
    shape = tuple(int(n) for n in dataset.shape or ())
    itemsize = dataset.dtype.itemsize
    declared = math.prod(shape) * itemsize
    if declared == 0:
        return
    plist = dataset.id.get_create_plist()
    layout = plist.get_layout()
    described = f"{name} declares {' x '.join(map(str, shape))} {dataset.dtype} ({human_bytes(declared)})"
    # Unwritten rows read as the fill value: fine for a partly written dataset, a bomb when the file is a
    # few KB and the declared rows are gigabytes (reading them costs minutes and memory, for nothing).
    bomb = declared > MAX_SPARSE_EXPANSION * os.path.getsize(dataset.file.filename) + SPARSE_SLACK
    if layout == h5py.h5d.CONTIGUOUS:
        stored = dataset.id.get_storage_size()
        if stored < declared and bomb:
            raise InputError(
                f"{where}: {described} in a {human_bytes(os.path.getsize(dataset.file.filename))} file, and "
                f"stores {human_bytes(stored)}: a sparse dataset (unwritten rows read as the fill value)"
            )
    elif layout == h5py.h5d.CHUNKED:
        chunk = tuple(int(n) for n in dataset.chunks)
        chunk_bytes = math.prod(chunk) * itemsize
        total = math.prod(math.ceil(n / c) for n, c in zip(shape, chunk, strict=True))
        stored = dataset.id.get_num_chunks() if hasattr(dataset.id, "get_num_chunks") else total
        if stored < total and bomb:
            raise InputError(
                f"{where}: {described} in a {human_bytes(os.path.getsize(dataset.file.filename))} file, and "
                f"stores only {stored} of its {total} chunks: a sparse dataset (unwritten rows read as the "
                "fill value)"
            )
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
    """Refuse a dataset whose bytes come from outside the dump (unless allowed) or that declares more
    than it stores; ``name`` ('/features') and ``where`` (the dump) name it in messages."""
    _external_storage(dataset, name, where)
    _virtual_sources(dataset, name, where)
    _stored_size(dataset, name, where)


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
    checks; a dataset declaring more than ``limit`` bytes is refused before reading."""
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
