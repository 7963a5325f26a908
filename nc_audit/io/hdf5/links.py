"""Names inside an untrusted HDF5 file, resolved link by link, and the files its links and storage name.

:func:`lookup` walks a path one link at a time: hard links are followed, soft links with a hop limit (a
loop is an error), external links only under ``--allow-external-data`` (:func:`external_data_allowed`)
and only to existing regular HDF5 files. :func:`outside_file` says which file a name in an HDF5 file
(an external link, a raw external storage entry, a virtual dataset source) really is: HDF5 looks for a
relative name in several places (the working folder, the referring file's folder, the ``HDF5_*_PREFIX``
variables), so every place it could find is checked, and two different files are refused as ambiguous.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

import h5py

from nc_audit.core.errors import InputError, first_line
from nc_audit.io.guards.files import describe_mode, is_pseudo_file

#: The command-line flag that lets a dump read data from other files.
OPT_IN = "--allow-external-data"
#: Soft links followed, in all, while resolving one path (a loop stops here).
MAX_LINK_HOPS = 32
#: Environment variables HDF5 prefixes relative names with (external links, virtual sources, raw storage).
PREFIX_VARIABLES = ("HDF5_EXT_PREFIX", "HDF5_VDS_PREFIX", "HDF5_EXTFILE_PREFIX")

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


def refusal(where: Path | str, name: str, what: str, target: str) -> InputError:
    """The error for data from another file without the opt-in."""
    return InputError(
        f"{where}: {name} {what} {target}; refused: a dump is read only from its own file "
        f"(pass {OPT_IN} for a trusted multi-file dump)"
    )


def beside(where: Path | str, name: str) -> str:
    """A file named by a link or a source, as a path (relative names are taken from the dump's folder)."""
    return name if os.path.isabs(name) else os.path.join(os.path.dirname(os.path.abspath(where)), name)


def candidates(where: Path | str, name: str, existing: bool = True) -> list[str]:
    """Every path HDF5 may open for ``name`` found in the file ``where``: the real paths of the existing
    ones, or (``existing=False``, for the output guard) every place as named, existing or not."""
    if os.path.isabs(name):
        places = [name]
    else:
        folder = os.path.dirname(os.path.abspath(where))
        places = [beside(where, name), os.path.abspath(name)]
        for variable in PREFIX_VARIABLES:
            for prefix in filter(None, os.environ.get(variable, "").split(os.pathsep)):
                places.append(os.path.join(prefix.replace("${ORIGIN}", folder), name))
    if not existing:
        return list(dict.fromkeys(places))
    found = {os.path.realpath(place) for place in places if os.path.lexists(place)}
    return sorted(found)


def outside_file(
    where: Path | str, name: str, what: str, target: str, *, hdf5: bool, origin: Path | str | None = None
) -> str | None:
    """The one existing regular file (HDF5 when ``hdf5``) ``target`` names in the file ``origin``
    (default: ``where``, the dump messages name), or None when it names nothing; an InputError when it
    is not a regular file or names two different files."""
    found = candidates(origin or where, target)
    if len(found) > 1:
        raise InputError(
            f"{where}: {name} {what} {target}, which names {len(found)} different files (beside the "
            "dump and from the working folder); refused as ambiguous"
        )
    if not found:
        return None
    path = found[0]
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not os.path.isfile(path) or is_pseudo_file(path):
        kind = "a /proc or /sys pseudo-file" if is_pseudo_file(path) else describe_mode(info.st_mode)
        raise InputError(f"{where}: {name} {what} {target}, which is not a regular file ({kind})")
    if hdf5 and not h5py.is_hdf5(path):
        raise InputError(f"{where}: {name} {what} {target}, which is not an HDF5 file")
    return path


def require_data_file(
    where: Path | str, name: str, what: str, target: str, *, hdf5: bool, origin: Path | str | None = None
) -> str:
    """An external target the opt-in allows: an existing regular file (HDF5 when ``hdf5``), its path."""
    path = outside_file(where, name, what, target, hdf5=hdf5, origin=origin)
    if path is None:
        raise InputError(f"{where}: {name} {what} {target}, which does not exist")
    return path


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
            return self._external(group, part, key, full)
        raise InputError(
            f"{self.where}: {full} is a user-defined link (type {kind}); nc-audit does not follow it"
        )

    def _external(self, group: h5py.Group, part: str, key: bytes, full: str) -> h5py.Group | h5py.Dataset:
        file_name, object_name = (v.decode("utf-8", "replace") for v in group.id.links.get_val(key))
        target = f"{file_name}:{object_name}"
        what = "is an external link to"
        if not external_allowed():
            raise refusal(self.where, full, what, target)
        checked = require_data_file(self.where, full, what, file_name, hdf5=True, origin=group.file.filename)
        try:
            node = group[part]
        except (KeyError, OSError, RuntimeError, ValueError) as error:
            raise InputError(
                f"{self.where}: cannot follow the external link {full} to {target} ({first_line(error)})"
            ) from None
        if os.path.realpath(node.file.filename) != checked:  # HDF5 opened another file than the one checked
            raise InputError(f"{self.where}: {full} {what} {target}, which HDF5 found elsewhere; refused")
        return node


def lookup(handle: h5py.File, path: str, where: Path | str | None = None) -> h5py.Group | h5py.Dataset | None:
    """The object at ``path`` ('/train/features') in ``handle``, or None when nothing is there.

    Hard links are followed, soft links with a hop limit (a loop is an InputError), external links only
    when :func:`external_allowed` (else an InputError naming the link and its target)."""
    return _Walker(handle, where or handle.filename, path).resolve(path)
