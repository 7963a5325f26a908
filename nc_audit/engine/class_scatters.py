"""Per-class scatters S_c += Σ_{y_i=c} z_i z_iᵀ of a block without reading the class sizes back to the host.

Splitting the rows by class (:func:`nc_audit.metrics.sample_level.group_by_class`) needs the class sizes
on the host to size one GEMM per class: on a GPU that is a device → host read, and a wait for every
queued kernel, per block. Here the sizes stay on the device. The rows, sorted by class, are copied into a
zero-padded buffer in which every class starts on a tile boundary, so that each tile of T rows belongs to
one class (``tiles`` is an upper bound known on the host: Σ_c ⌈n_c/T⌉ ≤ n/T + C); one batched GEMM gives
every tile's Gram and ``index_add_`` adds it to its class's scatter. Padding rows are zero and add
nothing; tiles past the last class get the last class's index and add zero to it.
Cost: 2(n + C·T)·d² flops instead of 2n·d², with T ≈ n/C (at most about twice the work), in groups of
tiles whose Grams take at most GROUP_BYTES.
"""

from __future__ import annotations

import torch

#: Memory of the tile Grams (tiles × d × d float64) of one batched GEMM.
GROUP_BYTES = 64 * 2**20
#: Smallest tile: thinner GEMMs waste the device.
MIN_TILE = 32


def tile_rows(rows: int, num_classes: int) -> int:
    """Rows per tile: about rows/C (so the padding adds at most ~rows), at least MIN_TILE."""
    return max(MIN_TILE, -(-rows // max(num_classes, 1)))


def add_class_scatters(
    scatters: torch.Tensor, Z: torch.Tensor, y: torch.Tensor, tile: int | None = None
) -> None:
    """scatters[c] += Σ_{y_i=c} z_i z_iᵀ in place, with no device → host read.

    scatters: (C, d, d) float64; Z: (n, d) float64 on the same device; y: (n,) long in 0..C−1 (validated).
    ``tile``: rows per tile (default :func:`tile_rows`).
    """
    C, d = int(scatters.shape[0]), int(scatters.shape[1])
    n = int(y.shape[0])
    if n == 0:
        return
    T = tile or tile_rows(n, C)
    tiles = n // T + C  # ≥ Σ_c ⌈n_c/T⌉, known without reading the sizes
    sizes = torch.zeros(C, dtype=torch.long, device=y.device).index_add_(0, y, torch.ones_like(y))  # (C,)
    class_tiles = (sizes + (T - 1)) // T  # (C,) tiles of each class
    first_tile = torch.cumsum(class_tiles, 0) - class_tiles  # (C,) each class's first tile
    order = torch.argsort(y, stable=True)  # (n,) rows grouped by class
    sorted_y = y[order]  # (n,)
    first_row = torch.cumsum(sizes, 0) - sizes  # (C,) each class's first row in sorted order
    rank = torch.arange(n, device=y.device) - first_row[sorted_y]  # (n,) position within its class
    slots = first_tile[sorted_y] * T + rank  # (n,) row of the padded buffer
    padded = Z.new_zeros(tiles * T, d).index_copy_(0, slots, Z[order])  # (tiles·T, d)
    ends = torch.cumsum(class_tiles, 0)  # (C,) one past each class's last tile
    owner = torch.searchsorted(ends, torch.arange(tiles, device=y.device), right=True).clamp_max_(C - 1)
    blocks = padded.view(tiles, T, d)  # (tiles, T, d)
    group = max(1, GROUP_BYTES // (8 * d * d))
    for begin in range(0, tiles, group):
        part = blocks[begin : begin + group]  # (g, T, d)
        scatters.index_add_(0, owner[begin : begin + group], part.transpose(1, 2) @ part)  # (g, d, d)
