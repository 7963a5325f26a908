"""Chunks of one split of a dump: the labels read by the thread that iterates, the features by whoever
processes the chunk, into a buffer it reuses.

The streaming passes hand chunks to one worker thread per core (:mod:`nc_audit.engine.workers`). Each worker
reads its chunk's features itself (``preadv`` releases the GIL; h5py's fallback is thread-safe) into its
own buffer, so the reading is spread over the cores like the arithmetic, no thread is left only reading,
and no fresh array (with its page faults) is made per chunk. :func:`nc_audit.io.dumps.reader.iter_chunks`
is the same reader with a fresh array per chunk.
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
from nc_audit.io.hdf5.direct import DirectRows

#: HDF5 chunks one h5py read may touch: HDF5 keeps state per chunk of a read, so a (1, 1)-chunked dataset
#: read a million rows at a time takes gigabytes; reads are cut to this many chunks instead.
MAX_CHUNKS_PER_READ = 4096


def rows_per_read(*datasets: h5py.Dataset) -> int:
    """Most rows one h5py read may cover so that it touches at most MAX_CHUNKS_PER_READ stored chunks of
    each of ``datasets`` (the features, when h5py reads them, and the labels)."""
    most = None
    for dataset in datasets:
        if dataset.chunks is None:
            continue
        row_chunk, *rest = dataset.chunks
        across = 1
        for size, chunk in zip(dataset.shape[1:], rest, strict=True):
            across *= max(1, -(-int(size) // int(chunk)))  # chunks side by side in one row
        rows = max(1, MAX_CHUNKS_PER_READ // across) * int(row_chunk)
        most = rows if most is None else min(most, rows)
    return most if most is not None else 1 << 62


@dataclass(frozen=True)
class Chunk:
    """Rows begin..end of a split, with their labels (n,) int64."""

    begin: int
    end: int
    labels: torch.Tensor

    @property
    def num_rows(self) -> int:
        return self.end - self.begin


class ChunkReader:
    """Iterate the chunks of ``features``/``labels`` rows start..stop (each ≤ ``step`` rows and, when read
    directly, within one stored chunk); :meth:`features` reads a chunk's rows. Use as a context manager:
    the file stays open until every worker has read its chunks."""

    def __init__(
        self,
        path: Path,
        features: h5py.Dataset,
        labels: h5py.Dataset,
        rows: tuple[int, int],
        step: int,
        direct: bool = True,
        scale: float = 1.0,
    ) -> None:
        self.path = path
        self._features, self._labels = features, labels
        self._direct = DirectRows.open(features) if direct else None
        self._rows = rows
        read_by_h5py = [labels] if self._direct is not None else [features, labels]
        self.step = min(step, rows_per_read(*read_by_h5py))
        self.dtype = features.dtype.newbyteorder("=")  # rows arrive in native byte order
        self.scale = scale  # a power of two every row is multiplied by (io/dumps/reader.py, feature_scale)
        self.width = int(features.shape[1])

    def __iter__(self) -> Iterator[Chunk]:
        start, stop = self._rows
        if self._direct is not None:
            ranges = self._direct.chunks(start, stop, self.step)
        else:
            ranges = ((begin, min(begin + self.step, stop)) for begin in range(start, stop, self.step))
        for begin, end in ranges:
            with self._reading(begin, end):
                labels = self._labels[begin:end]  # (n,)
            yield Chunk(begin, end, torch.from_numpy(labels.astype(np.int64, copy=False)))

    def buffer(self) -> np.ndarray:
        """A buffer for :meth:`features`, large enough for any chunk (one per worker)."""
        return np.empty((self.step, self.width), self.dtype)

    def features(self, chunk: Chunk, out: np.ndarray | None = None) -> torch.Tensor:
        """The chunk's rows (n, d) in native byte order: in ``out[:n]`` when given, else a fresh array.
        A read error is an InputError naming the rows."""
        with self._reading(chunk.begin, chunk.end):
            rows = self._read(chunk.begin, chunk.end, out)
        if self.scale != 1.0:
            with np.errstate(over="ignore", under="ignore"):  # extreme rows become inf or 0: counted later
                rows *= self.scale  # exact: a power of two
        return torch.from_numpy(rows)

    def _read(self, begin: int, end: int, out: np.ndarray | None) -> np.ndarray:
        if self._direct is not None:
            return self._direct.read(begin, end, out)
        if out is None:
            rows: np.ndarray = self._features[begin:end]
            return rows if rows.dtype.isnative else rows.astype(self.dtype)
        self._features.read_direct(out[: end - begin], np.s_[begin:end])
        return out[: end - begin]

    @contextmanager
    def _reading(self, begin: int, end: int) -> Iterator[None]:
        """Turn a failed read of rows begin..end into an InputError naming them."""
        try:
            yield
        except (OSError, ValueError) as error:
            raise InputError(f"{self.path}: cannot read rows {begin}..{end} ({first_line(error)})") from None

    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
            self._direct = None

    def __enter__(self) -> ChunkReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
