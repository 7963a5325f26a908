"""Where a dataset's bytes really come from: its HDF5 indirections, followed before one byte is read.

A dataset may keep its bytes in *raw external storage* (any file, e.g. ``/etc/passwd``), or be a
*virtual dataset* (VDS) whose mappings read other datasets, of the same file or of other files, which
may themselves be virtual, external, reached through soft or external links, or lead back to the VDS
(HDF5 recurses on such a cycle until it crashes). :func:`resolve_storage` follows the whole graph from
the dataset's creation property list alone (``get_external_*``, ``get_virtual_*``: no data is read, so
HDF5 never recurses) and refuses, before anything is read:

- raw external storage and sources in other files, unless ``--allow-external-data`` (then each target
  must be one existing regular file holding every byte it is declared to hold);
- a cycle, a graph deeper than MAX_DEPTH or larger than MAX_NODES, and printf-style source names;
- rows with no storage, which HDF5 would read as the fill value: a region of a VDS that no mapping
  covers, a source selection outside its source, a chunk never written, a contiguous dataset never
  allocated;
- a VDS declaring more than MAX_SPARSE_EXPANSION times the real storage of its sources.

It returns the bytes really stored behind the dataset (the sum over its distinct final storages).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import h5py
import numpy as np

from nc_audit.core.errors import InputError, first_line
from nc_audit.io.guards.files import human_bytes
from nc_audit.io.hdf5 import mapping as hdf5_mapping
from nc_audit.io.hdf5.links import external_allowed, lookup, outside_file, refusal, require_data_file
from nc_audit.io.hdf5.mapping import MappingError, boxes, unmapped

#: A virtual dataset may declare at most this many times the bytes its sources store, plus SPARSE_SLACK.
MAX_SPARSE_EXPANSION = 16
SPARSE_SLACK = 64 * 2**20
#: Virtual datasets nested in one another, and datasets visited in all, while resolving one dataset.
MAX_DEPTH = 16
MAX_NODES = 256
#: Mappings of one virtual dataset.
MAX_MAPPINGS = 4096


class _Graph:
    """One resolution: the chain being followed (for cycles), the datasets seen, the files opened."""

    def __init__(self, where: Path | str) -> None:
        self.where = where
        self.chain: list[tuple[str, int]] = []
        self.labels: list[str] = []  # the dataset, then each source followed: "/features -> /raw"
        self.visited = 0
        self.files: dict[str, h5py.File] = {}

    def fail(self, name: str, why: str) -> InputError:
        return InputError(f"{self.where}: {name} {why}; refused (nothing was read)")

    def path(self) -> str:
        """The chain followed so far, for messages: '/features -> /mid -> /raw'."""
        return " -> ".join(self.labels)

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()

    def resolve(self, dataset: h5py.Dataset, name: str) -> int:
        """The bytes stored behind ``dataset`` (named ``name`` in messages), every indirection checked."""
        key = (os.path.realpath(dataset.file.filename), int(h5py.h5o.get_info(dataset.id).addr))
        if key in self.chain:
            loop = " -> ".join([*self.labels[self.chain.index(key) :], name])
            raise self.fail(self.labels[0], f"is a virtual dataset whose sources lead back to it ({loop})")
        self.visited += 1
        if len(self.chain) >= MAX_DEPTH or self.visited > MAX_NODES:
            top = self.labels[0] if self.labels else name
            raise self.fail(top, f"reaches more than {MAX_DEPTH} nested or {MAX_NODES} virtual sources")
        self.chain.append(key)
        self.labels.append(name)
        try:
            return self._storage(dataset, self.path())
        finally:
            self.chain.pop()
            self.labels.pop()

    def _storage(self, dataset: h5py.Dataset, name: str) -> int:
        shape = tuple(int(n) for n in dataset.shape or ())
        declared = math.prod(shape) * dataset.dtype.itemsize
        plist = dataset.id.get_create_plist()
        if plist.get_external_count():
            return self._external(dataset, plist, name, declared)
        layout = plist.get_layout()
        if layout == h5py.h5d.VIRTUAL:
            return self._virtual(dataset, plist, name, shape, declared)
        if declared == 0:
            return 0
        stored = int(dataset.id.get_storage_size())
        described = f"declares {' x '.join(map(str, shape))} {dataset.dtype} ({human_bytes(declared)})"
        if layout == h5py.h5d.CHUNKED:
            chunk = tuple(int(n) for n in dataset.chunks)
            total = math.prod(math.ceil(n / c) for n, c in zip(shape, chunk, strict=True))
            written = int(dataset.id.get_num_chunks())
            if written < total:
                raise self.fail(
                    name,
                    f"{described} but stores only {written} of its {total} chunks: the rows of the others "
                    "were never written and would read as the fill value",
                )
        elif layout == h5py.h5d.CONTIGUOUS and (stored < declared or dataset.id.get_offset() is None):
            raise self.fail(
                name,
                f"{described} but stores {human_bytes(stored)}: rows never written would read as the "
                "fill value",
            )
        return stored

    def _external(self, dataset: h5py.Dataset, plist: h5py.h5p.PropDCID, name: str, declared: int) -> int:
        entries = [plist.get_external(i) for i in range(plist.get_external_count())]
        files = [entry[0].decode("utf-8", "replace") for entry in entries]
        shown = ", ".join(dict.fromkeys(files))
        origin = dataset.file.filename
        if not external_allowed():
            raise refusal(self.where, name, "keeps its bytes in the external file(s)", shown)
        held = 0
        for target, (_, offset, size) in zip(files, entries, strict=True):
            path = require_data_file(
                self.where, name, "keeps its bytes in", target, hdf5=False, origin=origin
            )
            available = max(0, os.path.getsize(path) - int(offset))
            wanted = available if int(size) >= h5py.h5f.UNLIMITED else int(size)
            if available < wanted:
                raise self.fail(name, f"keeps {wanted} bytes in {target}, which holds only {available} there")
            held += wanted
        if held < declared:
            raise self.fail(
                name, f"declares {human_bytes(declared)} but its external files hold {held} bytes"
            )
        return declared

    def _source_file(self, dataset: h5py.Dataset, name: str, file_name: str) -> h5py.File:
        """The file a VDS source names: the VDS's own, else (opt-in only) another regular HDF5 file."""
        own = dataset.file
        if file_name == ".":
            return own
        what = "is a virtual dataset reading from"
        origin = own.filename
        found = outside_file(self.where, name, what, file_name, hdf5=False, origin=origin)
        if found is not None and found == os.path.realpath(origin):
            return own
        if not external_allowed():
            raise refusal(self.where, name, what, file_name)
        if found is None:
            raise InputError(
                f"{self.where}: {name} is a virtual dataset whose source {file_name} is missing "
                "(its rows would read as the fill value)"
            )
        path = require_data_file(self.where, name, what, file_name, hdf5=True, origin=origin)
        if path not in self.files:
            try:
                self.files[path] = h5py.File(path, "r")
            except OSError as error:
                raise InputError(
                    f"{self.where}: {name} reads from {file_name} ({first_line(error)})"
                ) from None
        return self.files[path]

    def _virtual(
        self,
        dataset: h5py.Dataset,
        plist: h5py.h5p.PropDCID,
        name: str,
        shape: tuple[int, ...],
        declared: int,
    ) -> int:
        count = plist.get_virtual_count()
        if count > MAX_MAPPINGS:
            raise self.fail(name, f"is a virtual dataset of {count} mappings (at most {MAX_MAPPINGS})")
        mapped, sources, budget = [], {}, hdf5_mapping.MAX_BLOCKS
        for index in range(count):
            file_name = plist.get_virtual_filename(index)
            source_name = plist.get_virtual_dsetname(index)
            if "%" in file_name or "%" in source_name:
                raise self.fail(
                    name, f"is a virtual dataset with a printf-style source {file_name}:{source_name}"
                )
            try:
                found = boxes(plist.get_virtual_vspace(index), budget)
            except MappingError as error:
                raise self.fail(name, f"is a virtual dataset with {error}") from None
            budget -= found.shape[0]
            mapped.append(found)
            handle = self._source_file(dataset, name, file_name)
            shown = source_name if file_name == "." else f"{file_name}:{source_name}"
            source = self._lookup(handle, source_name, name)
            if not isinstance(source, h5py.Dataset):
                raise InputError(
                    f"{self.where}: {name} is a virtual dataset whose source {shown} is missing "
                    "(its rows would read as the fill value)"
                )
            self._check_selection(name, shown, plist.get_virtual_srcspace(index), source, found)
            key = (os.path.realpath(source.file.filename), int(h5py.h5o.get_info(source.id).addr))
            if key not in sources:
                sources[key] = self.resolve(source, shown)
        if unmapped(mapped, shape):
            raise self.fail(
                name, "is a virtual dataset with regions no source maps (they would read as the fill value)"
            )
        stored = sum(sources.values())
        if declared > MAX_SPARSE_EXPANSION * stored + SPARSE_SLACK:
            raise self.fail(
                name,
                f"is a virtual dataset declaring {human_bytes(declared)} from sources storing "
                f"{human_bytes(stored)}",
            )
        return stored

    def _lookup(self, handle: h5py.File, source_name: str, name: str) -> h5py.Group | h5py.Dataset | None:
        """The source dataset a mapping names, walked link by link; an error names the chain to it."""
        try:
            return lookup(handle, source_name, self.where)
        except InputError as error:
            text, prefix = str(error), f"{self.where}: "
            raise InputError(f"{prefix}{name} -> {text.removeprefix(prefix)}") from None

    def _check_selection(
        self, name: str, shown: str, space: h5py.h5s.SpaceID, source: h5py.Dataset, mapped: np.ndarray
    ) -> None:
        """The source selection must lie inside the source (the rest would read as the fill value)."""
        extent = tuple(int(n) for n in source.shape or ())
        wanted = int(((mapped[:, 1] - mapped[:, 0]) + 1).prod(axis=1).sum()) if mapped.size else 0
        kind = space.get_select_type()
        if kind == h5py.h5s.SEL_ALL and space.get_simple_extent_type() != h5py.h5s.SIMPLE:
            inside = math.prod(extent) >= wanted  # the whole source, whatever its extent
        else:
            try:
                selected = boxes(space, hdf5_mapping.MAX_BLOCKS)
            except MappingError as error:
                raise self.fail(name, f"is a virtual dataset whose source {shown} has {error}") from None
            inside = selected.shape[-1] == len(extent) and bool(
                np.all(selected[:, 1] < np.asarray(extent, np.int64)) if selected.size else True
            )
        if not inside:
            raise self.fail(
                name,
                f"is a virtual dataset mapping rows outside its source {shown} (shape {extent}); they "
                "would read as the fill value",
            )


def resolve_storage(dataset: h5py.Dataset, name: str, where: Path | str) -> int:
    """Follow every indirection of ``dataset`` (named ``name`` in the dump ``where``) to its final
    storage and check it there (see the module docstring); the bytes really stored behind it."""
    graph = _Graph(where)
    try:
        return graph.resolve(dataset, name)
    except (OSError, RuntimeError, ValueError, KeyError) as error:
        raise InputError(f"{where}: cannot resolve the storage of {name} ({first_line(error)})") from None
    finally:
        graph.close()
