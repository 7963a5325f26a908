"""Every file a run reads through one named input, for the output guard (nc_audit.io.plan.outputs).

An input is more than the path on the command line:

- a folder (a Hugging Face ``save_pretrained`` folder) is every file in it (its subfolders too, links
  to files elsewhere resolved by the guard);
- an HDF5 file (a dump, an ``.h5`` data file) is also every file its external links, virtual-dataset
  sources and raw external storage name, and theirs in turn. The walk reads link and layout records
  only (h5py's link API, ``Dataset.virtual_sources()``, ``Dataset.external``), never a data byte, and
  never opens an external link's object. A relative name is taken both from the file's folder and
  from the working folder and under the ``HDF5_*_PREFIX`` folders (HDF5 tries them all: the same
  places the reader checks, :func:`nc_audit.io.hdf5.links.candidates`), so each file is protected;
- a ``--model file.py:CALLABLE`` (or ``pkg.mod:CALLABLE``) names its source file.

A file that cannot be opened as HDF5 is just itself. The walk is bounded (files, links, depth).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: h5py is only needed when an input is HDF5
    import h5py

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5", ".nc")
_MAX_FILES = 10_000
_MAX_LINKS = 100_000
_MAX_DEPTH = 16
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def folder_files(folder: Path) -> Iterator[Path]:
    """The files under ``folder`` (symlinked subfolders not entered), at most _MAX_FILES."""
    count = 0
    for parent, _, names in os.walk(folder, followlinks=False):
        for name in names:
            count += 1
            if count > _MAX_FILES:
                return
            yield Path(parent) / name


def _is_hdf5(path: Path) -> bool:
    """An HDF5 file by its signature at offset 0 (a user block moves it: then by suffix)."""
    try:
        with open(path, "rb") as handle:
            if handle.read(8) == _HDF5_SIGNATURE:
                return True
    except OSError:
        return False
    return path.suffix.lower() in HDF5_SUFFIXES


def _linked_names(path: Path) -> list[str]:
    """The file names the HDF5 file ``path`` refers to (external links, VDS sources, raw storage)."""
    import h5py

    names: list[str] = []
    try:
        handle = h5py.File(path, "r", locking=False)
    except Exception:  # not HDF5, unreadable: only the file itself is an input
        return names
    seen = 0
    try:

        def visit(name: str, link: object) -> int | None:
            nonlocal seen
            seen += 1
            if seen > _MAX_LINKS:
                return 1
            if isinstance(link, h5py.ExternalLink):
                names.append(link.filename)
            elif isinstance(link, h5py.HardLink):
                names.extend(_dataset_files(handle, name))
            return None

        handle.visititems_links(visit)
    except Exception:  # a broken file: what was found so far
        pass
    finally:
        handle.close()
    return names


def _dataset_files(handle: h5py.File, name: str) -> list[str]:
    import h5py

    try:
        item = handle.get(name)
        if not isinstance(item, h5py.Dataset):
            return []
        found = [entry[0] for entry in (item.external or [])]
        if item.is_virtual:
            found += [source.file_name for source in item.virtual_sources() if source.file_name != "."]
        return [str(entry.decode() if isinstance(entry, bytes) else entry) for entry in found]
    except Exception:
        return []


def reached_files(path: Path) -> list[Path]:
    """``path`` and, for an HDF5 file, every file it reaches (see the module docstring)."""
    from nc_audit.io.hdf5.links import candidates  # h5py: imported only when an HDF5 input is walked

    found: list[Path] = [path]
    seen = {os.path.realpath(path)}
    frontier = [(path, 0)]
    while frontier and len(found) < _MAX_FILES:
        current, depth = frontier.pop()
        if depth >= _MAX_DEPTH or not current.is_file() or not _is_hdf5(current):
            continue
        for name in _linked_names(current):
            for candidate in map(Path, candidates(current, name, existing=False)):
                real = os.path.realpath(candidate)
                if real in seen:
                    continue
                seen.add(real)
                found.append(candidate)
                frontier.append((candidate, depth + 1))
    return found


def model_source_files(spec: str | None) -> list[Path]:
    """The source file a ``--model`` spec names: ``file.py:CALLABLE``, or ``pkg.mod:CALLABLE`` as
    ``pkg/mod.py`` / ``pkg/mod/__init__.py`` under the working folder (nothing is imported)."""
    if not spec:
        return []
    target = spec.rpartition(":")[0] if ":" in spec else spec
    if not target:
        return []
    if target.endswith(".py") or os.sep in target or "/" in target:
        return [Path(target).expanduser()]
    parts = [part for part in target.split(".") if part]
    if not parts:
        return []
    module = Path(*parts)
    return [module.with_suffix(".py"), module / "__init__.py"]


def expand_inputs(inputs: Iterable[str | os.PathLike[str] | None]) -> list[Path]:
    """Every file read through ``inputs``: folders as their files, HDF5 files with what they reach."""
    expanded: list[Path] = []
    for item in inputs:
        if item is None or os.fspath(item) == "":
            continue
        path = Path(os.fspath(item))
        expanded.append(path)
        if path.is_dir():
            expanded.extend(folder_files(path))
        elif path.is_file():
            expanded.extend(reached_files(path)[1:])
    return expanded
