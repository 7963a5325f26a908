"""Blocks: the unit of work of the streaming passes' fused kernels.

A chunk read from a dump (up to ~32 MB) is processed in blocks of ``block_rows`` rows, whose float64 work
buffers are allocated once and reused, so that no large temporary (and its page faults) is made per block.

A block's work never reads a device value back to the host: no ``.item()``, ``int()``, ``bool()`` or
``.tolist()`` of a tensor, and no kernel whose output size depends on the data (``nonzero``, boolean
masks, ``unique``, ``bincount`` on CUDA). On a GPU each such read waits for every queued kernel and
copies device → host; counts of bad rows and decisions are kept as device tensors instead and read once,
after the pass. The only host ↔ device traffic per block is the upload of its rows and labels
(``tests/engine/test_device_sync.py`` checks all of this, on CPU too).
"""

from __future__ import annotations

import torch

#: Bytes of float64 work per block on CPU: large enough that per-call overhead does not dominate (as it
#: does at ~128 rows), small enough that the work buffers stay in cache (about 1,024 rows at d = 512).
CPU_BLOCK_BYTES = 4 * 2**20
#: On a GPU larger blocks amortise the kernel launches.
GPU_BLOCK_BYTES = 64 * 2**20
#: Bytes of one block's products with a tile of classes (the second pass's scores), per worker; whatever
#: the class count C, a block holds rows × tile scores within this budget (classes are tiled past it).
CPU_PRODUCT_BYTES = 4 * 2**20
GPU_PRODUCT_BYTES = 64 * 2**20
#: Fewest classes per tile: blocks get fewer rows rather than tiles narrower than this.
MIN_TILE = 256


def block_rows(feature_dim: int, device: torch.device) -> int:
    """Rows per block for ``feature_dim``-wide float64 work on ``device``."""
    budget = GPU_BLOCK_BYTES if device.type != "cpu" else CPU_BLOCK_BYTES
    return max(16, budget // (8 * max(feature_dim, 1)))


def product_budget(device: torch.device) -> int:
    """Bytes one worker's block of products (rows × class tile) may take on ``device``."""
    return GPU_PRODUCT_BYTES if device.type != "cpu" else CPU_PRODUCT_BYTES


def product_shape(
    feature_dim: int, columns: int, device: torch.device, itemsize: int = 8, budget: int | None = None
) -> tuple[int, int]:
    """(rows per block, columns per tile) for products of ``columns`` classes: rows from
    :func:`block_rows`, fewer when even a MIN_TILE-wide tile would not fit; rows × tile × itemsize ≤
    ``budget`` (default :func:`product_budget`), independent of ``columns``."""
    budget = product_budget(device) if budget is None else budget
    widest = max(1, min(columns, MIN_TILE))
    rows = max(16, min(block_rows(feature_dim, device), budget // (itemsize * widest)))
    tile = max(1, min(columns, budget // (itemsize * rows)))
    return rows, tile


class Blockwise:
    """Base of a fused accumulator: :meth:`update` cuts rows into blocks of ``rows_per_block`` rows, moves
    them to ``device`` and hands each to ``_update_block(features (n, d) as stored, labels (n,) long)``;
    ``block_start`` holds the block's first row within the chunk meanwhile."""

    device: torch.device
    rows_per_block: int
    block_start: int = 0

    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Add features (n, d) of any float dtype with labels (n,) in 0..C−1 (already validated)."""
        step = self.rows_per_block
        for begin in range(0, int(labels.shape[0]), step):
            H = features[begin : begin + step].to(self.device, non_blocking=True)  # (n, d)
            y = labels[begin : begin + step].to(self.device, torch.long, non_blocking=True)  # (n,)
            self.block_start = begin
            self._update_block(H, y)

    def _update_block(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        raise NotImplementedError


def add_class_counts(counts: torch.Tensor, labels: torch.Tensor) -> None:
    """counts[c] += #{i: labels_i = c}, in place, with no device read (``torch.bincount`` reads the
    largest label back to the host on CUDA). counts: (C,) float64, labels: (n,) long in 0..C−1."""
    counts.index_add_(0, labels, counts.new_ones(1).expand(labels.shape[0]))


def count_nonfinite(row_values: torch.Tensor) -> torch.Tensor:
    """How many of the rows' values (n,) are NaN or ±Inf, as a 0-d int64 tensor on their device."""
    return torch.isfinite(row_values).logical_not_().sum()
