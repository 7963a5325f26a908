"""Chunks of one split of a dump: the labels read by the thread that iterates, the features by whoever
processes the chunk, into a buffer it reuses.

The streaming passes hand chunks to one worker thread per core (:mod:`nc_audit.engine.workers`). Each worker
reads its chunk's features itself (``preadv`` releases the GIL; h5py's fallback is thread-safe) into its
own buffer, so the reading is spread over the cores like the arithmetic, no thread is left only reading,
and no fresh array (with its page faults) is made per chunk. :func:`nc_audit.io.dumps.iter_chunks`
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
from nc_audit.io.direct import DirectRows


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
    ) -> None:
        self.path = path
        self._features, self._labels = features, labels
        self._rows, self.step = rows, step
        self._direct = DirectRows.open(features, path) if direct else None
        self.dtype = features.dtype.newbyteorder("=")  # rows arrive in native byte order
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
            return torch.from_numpy(self._read(chunk.begin, chunk.end, out))

    def _read(self, begin: int, end: int, out: np.ndarray | None) -> np.ndarray:
        if self._direct is not None:
            return self._direct.read(begin, end, out)
        if out is None:
            rows = self._features[begin:end]
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
