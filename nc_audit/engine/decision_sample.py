"""A seeded random subset of a split's rows for the NC4/accuracy decisions (``--decision-samples N``).

The subset is the N rows with the smallest keys of a seeded stream of uniform keys, one per row in row
order (NumPy's PCG64 with ``seed``), drawn in blocks so that memory is O(N + block) whatever the split's
size. It depends only on (rows, N, seed): not on the chunking, the worker count or the rank count, so
every rank keeps the sampled rows inside its own range and the merged counts are those of one process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nc_audit.core.errors import InputError

#: Keys drawn at a time.
KEY_BLOCK = 1 << 20


@dataclass(frozen=True)
class DecisionSample:
    """The sorted rows (global indices within the split) whose decisions are counted."""

    rows: np.ndarray  # (N,) int64, sorted
    seed: int
    total: int  # rows of the split

    @classmethod
    def draw(cls, total: int, size: int | None, seed: int = 0) -> DecisionSample | None:
        """The subset of ``size`` of ``total`` rows for ``seed``; None when every row is kept."""
        if size is None or size >= total:
            return None
        if size < 1:
            raise InputError(f"--decision-samples {size}: the number of rows must be at least 1")
        generator = np.random.default_rng(seed)
        keys = np.empty(0, dtype=np.float64)
        rows = np.empty(0, dtype=np.int64)
        for begin in range(0, total, KEY_BLOCK):
            stop = min(total, begin + KEY_BLOCK)
            keys = np.concatenate([keys, generator.random(stop - begin)])
            rows = np.concatenate([rows, np.arange(begin, stop, dtype=np.int64)])
            if keys.shape[0] > size:
                keep = np.argpartition(keys, size - 1)[:size]
                keys, rows = keys[keep], rows[keep]
        return cls(np.sort(rows), int(seed), int(total))

    @property
    def size(self) -> int:
        return int(self.rows.shape[0])

    def within(self, begin: int, end: int) -> np.ndarray:
        """Positions (relative to ``begin``) of the sampled rows in begin..end−1, int64, sorted."""
        lo, hi = np.searchsorted(self.rows, [begin, end])
        return self.rows[lo:hi] - begin

    def describe(self) -> str:
        """The report's convention for decisions counted on this subset."""
        return (
            f"seeded random subset of {self.size} of {self.total} rows (seed {self.seed}), "
            "NC1 and every other statistic from all rows"
        )
