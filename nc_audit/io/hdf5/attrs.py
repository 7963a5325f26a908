"""HDF5 attributes of an untrusted file, read only when their size is bounded before reading.

A fixed-size attribute's bytes are known before reading (``get_storage_size``). A variable-length string
is not: its bytes sit in the file's global heap, and HDF5 inflates the whole object to read any part of
it (a 100 MB head name costs 500 MB to read and 105 MB to print). Those bytes can only lie in the part
of the file that holds no dataset, so a variable-length attribute is read only when that part
(:func:`heap_bound`: the file's size less what its datasets store) is at most MAX_HEAP_BYTES; an
array of them only when it has at most one element.
"""

from __future__ import annotations

import itertools
import os

import h5py
import numpy as np

#: Largest fixed-size attribute read (its stored bytes).
MAX_ATTR_BYTES = 64 * 2**10
#: Largest part of a file outside its datasets (global heap, metadata) for variable-length attributes.
MAX_HEAP_BYTES = 16 * 2**20
#: Attributes of one object looked at, and the longest attribute name kept.
MAX_ATTRS = 256
MAX_NAME_CHARS = 256


#: Objects visited to find what a file's datasets store; a file holding more is taken as all heap.
MAX_OBJECTS = 4096


def heap_bound(handle: h5py.File) -> int:
    """Bytes of ``handle``'s file that no dataset stores (an upper bound of any variable-length
    attribute's size): the file's size less the storage of the datasets it holds itself (the whole
    file when it holds more than MAX_OBJECTS objects: they are not all visited)."""
    size = os.path.getsize(handle.filename)
    stored, seen = 0, 0

    def add(_: str, item: object) -> bool | None:
        nonlocal stored, seen
        seen += 1
        if seen > MAX_OBJECTS:
            return True  # stops the visit
        if isinstance(item, h5py.Dataset) and item.file.filename == handle.filename and not item.is_virtual:
            if item.id.get_create_plist().get_external_count() == 0:
                stored += int(item.id.get_storage_size())
        return None

    if handle.visititems(add):  # hard links only: other files and soft links are not visited
        return size
    return max(0, size - stored)


def variable_length(kind: h5py.h5t.TypeID) -> bool:
    """Whether values of the HDF5 type ``kind`` hold variable-length parts (bytes in the global heap)."""
    if isinstance(kind, h5py.h5t.TypeStringID):
        return bool(kind.is_variable_str())
    if isinstance(kind, h5py.h5t.TypeVlenID):
        return True
    if isinstance(kind, h5py.h5t.TypeCompoundID):
        return any(variable_length(kind.get_member_type(i)) for i in range(kind.get_nmembers()))
    if isinstance(kind, h5py.h5t.TypeArrayID):
        return variable_length(kind.get_super())
    return False


def attr_size_problem(obj: h5py.HLObject, key: str, heap: int) -> str | None:
    """Why the attribute ``key`` of ``obj`` is not read (its size is not bounded), or None."""
    aid = obj.attrs.get_id(key)
    if variable_length(aid.get_type()):
        count = aid.get_space().get_simple_extent_npoints()
        if count > 1:
            return f"is an array of {count} variable-length values"
        if heap > MAX_HEAP_BYTES:
            return (
                f"is variable-length in a file holding {heap} bytes besides its datasets (more than "
                f"{MAX_HEAP_BYTES})"
            )
        return None
    stored = int(aid.get_storage_size())
    return f"holds {stored} bytes (more than {MAX_ATTR_BYTES})" if stored > MAX_ATTR_BYTES else None


def attr_names(obj: h5py.HLObject) -> list[str]:
    """The first MAX_ATTRS attribute names of ``obj`` no longer than MAX_NAME_CHARS."""
    return [key for key in itertools.islice(obj.attrs, MAX_ATTRS) if len(key) <= MAX_NAME_CHARS]


def as_text(value: object) -> str:
    """An attribute's value as a string (bytes decoded, one-element arrays unwrapped)."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
