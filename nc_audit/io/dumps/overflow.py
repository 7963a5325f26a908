"""Why a float64 split's rows turned non-finite in a pass: NaN/Inf values, or rows so much larger than the
others that their squares overflow float64 (no single power-of-two scale fits both: the small rows'
squares would underflow). Run only when a pass has already failed, to name the rows in the message."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nc_audit.io.dumps.reader import SplitInfo, iter_chunks

#: A row this many times larger than the median row (in its largest |value|) cannot share a float64
#: scale with it: (1e150)² is beyond float64's 1e308 range once summed with d terms.
OVERFLOW_RATIO = 1e150


@dataclass(frozen=True)
class OverflowRows:
    """Rows of a split holding NaN/Inf, and rows too large for the others' float64 scale."""

    nonfinite: int
    first_nonfinite: int | None
    huge: int
    first_huge: int | None
    largest: float
    median: float

    def describe(self, num_samples: int) -> str | None:
        """The message's cause, or None when neither kind of row was found."""
        if self.nonfinite:
            return (f"{self.nonfinite} of {num_samples} feature rows hold NaN or Inf values "
                    f"(the first at row {self.first_nonfinite})")  # fmt: skip
        if self.huge:
            return (
                f"{self.huge} of {num_samples} feature rows (the first at row {self.first_huge}) hold values up to "
                f"{self.largest:.3g}, beyond {OVERFLOW_RATIO:.0e} times the median row's {self.median:.3g}: "
                "no float64 scale holds the squares of both; rescale or drop those rows"
            )
        return None


def overflow_rows(info: SplitInfo, chunk_rows: int | None = None) -> OverflowRows:
    """One pass over the split (as stored, unscaled): its NaN/Inf rows and its rows beyond OVERFLOW_RATIO
    times the median row magnitude (the largest |value| of each row)."""
    magnitudes, nonfinite, first_nonfinite, start = [], 0, None, 0
    for features, _ in iter_chunks(info, chunk_rows):
        values = features.numpy().astype(np.float64, copy=False)  # (n, d)
        finite = np.isfinite(values).all(axis=1)  # (n,)
        if not finite.all():
            nonfinite += int((~finite).sum())
            first_nonfinite = (
                first_nonfinite if first_nonfinite is not None else start + int(np.argmin(finite))
            )
        row_max = np.where(
            finite, np.abs(np.where(np.isfinite(values), values, 0.0)).max(axis=1, initial=0.0), 0.0
        )
        magnitudes.append(row_max)
        start += values.shape[0]
    sizes = np.concatenate(magnitudes) if magnitudes else np.zeros(0)
    median = float(np.median(sizes)) if sizes.size else 0.0
    huge_mask = sizes > OVERFLOW_RATIO * median if median > 0 else sizes > math.sqrt(np.finfo(np.float64).max)
    huge = int(huge_mask.sum())
    return OverflowRows(
        nonfinite, first_nonfinite, huge, int(np.argmax(huge_mask)) if huge else None,
        float(sizes.max()) if sizes.size else 0.0, median,
    )  # fmt: skip
