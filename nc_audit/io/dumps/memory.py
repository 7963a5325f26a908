"""One split of features held in memory, read in chunks exactly as a dump's split is read.

``measure_arrays``, ``measure(model, loader)``, the Monitor and the training callbacks hold their features
in memory. A :class:`MemoryRows` attached to a :class:`nc_audit.io.dumps.reader.SplitInfo` makes
:func:`nc_audit.io.dumps.reader.open_chunks` hand out a :class:`MemoryChunkReader` instead of opening a
file, so the streaming passes (:mod:`nc_audit.engine.passes`) read these rows through the same chunks,
the same per-worker buffers and the same power-of-two scale as a dump's rows: one pipeline, and no
temporary HDF5 file. The rows are never modified (each chunk is copied into the reading worker's buffer).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from nc_audit.io.dumps.chunks import Chunk, ChunkReader

#: Feature dtypes kept as they are; other floating dtypes (bfloat16) are widened exactly to float32.
KEPT_DTYPES = (np.float16, np.float32, np.float64)


class MemoryRows:
    """Features (N, d) float16/32/64 and labels (N,) int64 of one split, on the host, read-only.

    Compared by identity: two splits are "the same split" only when they are the same rows (the
    measurement then takes its class means from the split it decides on)."""

    def __init__(self, features: np.ndarray, labels: np.ndarray) -> None:
        if features.ndim != 2 or labels.ndim != 1 or features.shape[0] != labels.shape[0]:
            raise ValueError(f"features {features.shape} and labels {labels.shape} must be (N, d) and (N,)")
        if features.dtype.type not in KEPT_DTYPES:
            raise ValueError(f"features must be float16/32/64, not {features.dtype}")
        # read-only views: the caller's own arrays keep their flags, and nothing here can write them
        self.features = np.ascontiguousarray(features).view()  # (N, d)
        self.labels = np.ascontiguousarray(labels, dtype=np.int64).view()  # (N,)
        self.features.flags.writeable = False
        self.labels.flags.writeable = False

    @classmethod
    def of_tensors(cls, features: torch.Tensor, labels: torch.Tensor) -> MemoryRows:
        """Rows from tensors on any device (detached, copied to the host once; bfloat16 widened exactly
        to float32, integer features to float64)."""
        H = features.detach()
        if not H.is_floating_point():
            H = H.to(torch.float64)
        elif H.dtype not in (torch.float16, torch.float32, torch.float64):
            H = H.to(torch.float32)
        return cls(H.cpu().numpy(), labels.detach().to("cpu", torch.int64).numpy())

    @property
    def num_samples(self) -> int:
        return int(self.features.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def dtype(self) -> str:
        return str(self.features.dtype)

    def reader(self, step: int, rows: tuple[int, int], scale: float = 1.0) -> MemoryChunkReader:
        """A chunk reader over rows start..stop in chunks of at most ``step`` rows."""
        return MemoryChunkReader(self, rows, step, scale)


class MemoryChunkReader(ChunkReader):
    """:class:`nc_audit.io.dumps.chunks.ChunkReader` over :class:`MemoryRows` (no file behind it)."""

    def __init__(self, source: MemoryRows, rows: tuple[int, int], step: int, scale: float = 1.0) -> None:
        self.source = source
        self._rows = rows
        self.step = max(1, step)
        self.dtype = source.features.dtype
        self.scale = scale
        self.width = source.feature_dim

    def __iter__(self) -> Iterator[Chunk]:
        start, stop = self._rows
        for begin in range(start, stop, self.step):
            end = min(begin + self.step, stop)
            yield Chunk(begin, end, torch.from_numpy(self.source.labels[begin:end].copy()))

    def features(self, chunk: Chunk, out: np.ndarray | None = None) -> torch.Tensor:
        """The chunk's rows (n, d), copied into ``out[:n]`` when given, else into a fresh array."""
        rows = self.source.features[chunk.begin : chunk.end]
        if out is None:
            copied = rows.copy()
        else:
            copied = out[: chunk.num_rows]
            np.copyto(copied, rows)
        if self.scale != 1.0:
            with np.errstate(over="ignore", under="ignore"):  # extreme rows become inf or 0: counted later
                copied *= self.scale  # exact: a power of two
        return torch.from_numpy(copied)

    def close(self) -> None:
        return None
