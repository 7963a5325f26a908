"""Rows of an uncompressed HDF5 dataset read straight from the file's bytes, without h5py's read path.

A plain dump (no filters, floats, contiguous or chunked by whole rows, no user block) stores each chunk as
one run of bytes whose address HDF5 reports (``H5Dget_chunk_info_by_coord``, ``H5Dget_offset``). One
``preadv`` per chunk copies that run into a fresh array; the system call releases the GIL, so the worker
threads of a pass keep computing while the next chunk is read (h5py holds the GIL while it reads);
``make bench`` times this reader against h5py's slicing (benchmarks/RESULTS.md).

``preadv`` rather than a memory map: a file that shrinks while a mapped chunk is in flight kills the
process with SIGBUS, while a short read here is a clear error naming the rows. Anything this module does
not handle (compression or other filters, partial-width chunks, external or virtual storage, a user
block, another file driver, no ``os.preadv``, a chunk stored with its filters skipped) is read by h5py,
per dataset or per chunk. A chunk never written is an error, never the fill value (the dump was checked
to store every chunk, :mod:`nc_audit.io.hdf5.graph`; one missing now was removed since). Big-endian data
is read the same way and swapped to native order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import h5py
import numpy as np


class DirectRows:
    """Row chunks of one 2-D dataset, read from the file (see the module docstring)."""

    def __init__(
        self, dataset: h5py.Dataset, fd: int, contiguous_offset: int | None, chunk_rows: int
    ) -> None:
        self.dataset = dataset
        self.dtype: np.dtype = dataset.dtype
        self.rows, self.width = (int(n) for n in dataset.shape)
        self.row_bytes: int = self.width * self.dtype.itemsize
        self._fd = fd
        self._contiguous_offset = contiguous_offset
        self._chunk_rows = chunk_rows  # rows per stored chunk (all rows for a contiguous dataset)

    @classmethod
    def open(cls, dataset: h5py.Dataset) -> DirectRows | None:
        """A reader for ``dataset``, or None when its layout is not plain. The bytes are read from the
        file that holds the dataset (``dataset.file``: the target of an external link, when the dump's
        dataset is one), since its offsets are offsets in that file."""
        layout = _plain_layout(dataset) if hasattr(os, "preadv") else None
        if layout is None:
            return None
        try:
            fd = os.open(dataset.file.filename, os.O_RDONLY)
        except OSError:
            return None
        return cls(dataset, fd, *layout)

    def close(self) -> None:
        """Close the file descriptor."""
        os.close(self._fd)

    def chunks(self, start: int, stop: int, step: int) -> Iterator[tuple[int, int]]:
        """Half-open row ranges covering start..stop, each ≤ ``step`` rows and within one stored chunk."""
        begin = start
        while begin < stop:
            chunk_end = (begin // self._chunk_rows + 1) * self._chunk_rows
            end = min(begin + step, stop, chunk_end)
            yield begin, end
            begin = end

    def read(self, begin: int, end: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows begin..end (within one stored chunk) as an (n, d) array in native byte order: a fresh one,
        or ``out[:n]`` (a C-contiguous buffer of the native dtype, reused by the caller).

        Raises OSError when the file ends before the rows do (it shrank after it was opened) or their
        chunk is not stored."""
        native = self.dtype.newbyteorder("=")
        rows: np.ndarray = np.empty((end - begin, self.width), native) if out is None else out[: end - begin]
        offset = self._offset_of(begin)
        if offset is None:  # a chunk stored with some filter skipped: h5py reads it (from this file)
            self.dataset.read_direct(rows, np.s_[begin:end])
            return rows
        view = rows.data.cast("B")  # memoryview(rows): its buffer as bytes
        done = 0
        while done < view.nbytes:
            got = os.preadv(self._fd, [view[done:]], offset + done)
            if got <= 0:
                raise OSError(f"the file ends {view.nbytes - done} bytes before row {end}")
            done += got
        if not self.dtype.isnative:
            rows.byteswap(inplace=True)  # the stored bytes, reinterpreted in native order
        return rows

    def _offset_of(self, row: int) -> int | None:
        if self._contiguous_offset is not None:
            return self._contiguous_offset + row * self.row_bytes
        first = row - row % self._chunk_rows
        info = self.dataset.id.get_chunk_info_by_coord((first, 0))
        if info.byte_offset is None:
            raise OSError(f"the chunk holding row {row} is not stored (it would read as the fill value)")
        if info.filter_mask != 0:
            return None
        return int(info.byte_offset) + (row - first) * self.row_bytes


def _plain_layout(dataset: h5py.Dataset) -> tuple[int | None, int] | None:
    """(contiguous byte offset or None, rows per stored chunk) for a plain dataset, else None."""
    if dataset.ndim != 2 or dataset.dtype.kind != "f":
        return None
    if dataset.file.userblock_size != 0 or dataset.file.driver != "sec2":
        return None
    plist = dataset.id.get_create_plist()
    if plist.get_nfilters() != 0 or plist.get_external_count() != 0:
        return None
    layout = plist.get_layout()
    if layout == h5py.h5d.CONTIGUOUS:
        offset = dataset.id.get_offset()
        return (int(offset), max(1, dataset.shape[0])) if offset is not None else None
    if layout == h5py.h5d.CHUNKED and hasattr(dataset.id, "get_chunk_info_by_coord"):
        rows, width = plist.get_chunk()
        return (None, int(rows)) if width == dataset.shape[1] else None
    return None
