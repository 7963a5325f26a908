"""Pairwise class metrics over C×C tiles: NC2 equiangularity and maximal angle, CDNV (docs/METRICS.md).

Exact float64 sums over all C(C−1)/2 pairs c < c', one tile of ``tile × tile`` pairs at a time (the
tiles of the upper triangle; a diagonal tile is symmetric, so its pairs are half its sum less its
diagonal), in reused buffers, so memory is O(tile²) whatever C.
The mean cosine comes first in closed form, Σ_{c<c'} cos = (‖Σ_c û_c‖² − Σ_c ‖û_c‖²)/2, so the spread is
one pass of Σ (cos − mean)²: no cancellation. Same formulas as :mod:`nc_audit.metrics.collapse`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from nc_audit.core.linalg import unit_rows

#: Largest tile side: a 1024×1024 float64 tile (8 MB) stays cache-friendly and is reused, not reallocated.
MAX_TILE = 1024


def upper_tiles(C: int, tile: int) -> Iterator[tuple[slice, slice, bool]]:
    """(rows, columns, diagonal) of the tiles covering the pairs c < c' of C items; ``tile`` ≥ 1 need not
    divide C. A diagonal tile is symmetric and also holds its diagonal and lower pairs: its upper sum is
    (tile sum − diagonal sum)/2."""
    for a in range(0, C, tile):
        for c in range(a, C, tile):
            yield slice(a, min(a + tile, C)), slice(c, min(c + tile, C)), c == a


def num_pairs(C: int) -> int:
    return C * (C - 1) // 2


class TileBuffers:
    """Reused float64 tile buffers (no allocation per tile: large tiles would page-fault every time)."""

    def __init__(self, tile: int, device: torch.device, count: int) -> None:
        self.buffers = [torch.empty(tile * tile, dtype=torch.float64, device=device) for _ in range(count)]

    def get(self, index: int, rows: int, cols: int) -> torch.Tensor:
        return self.buffers[index][: rows * cols].view(rows, cols)


class AngleSums:
    """The running sums of :func:`tiled_angles` over tiles of cosines: Σ|cos + 1/(C−1)| and
    Σ(cos − mean)² over the pairs, the mean cosine known beforehand in closed form from the unit rows."""

    def __init__(self, U: torch.Tensor) -> None:
        C = int(U.shape[0])
        self.pairs = num_pairs(C)
        total = U.sum(0)  # (d,)
        mean = float(((total * total).sum() - (U * U).sum()) / 2.0) / self.pairs
        self.shift = 1.0 / (C - 1)
        self.centre = mean + self.shift  # X = cos + shift; cos − mean = X − centre
        self.absolutes = self.squares = 0.0

    def add(self, block: torch.Tensor, diagonal: bool) -> None:
        """Add a tile of cosines (r, k) (overwritten); a diagonal tile counts each pair twice."""
        block.add_(self.shift)  # (r, k) cos + 1/(C−1)
        l1 = float(torch.linalg.vector_norm(block, 1))
        d1 = float(torch.linalg.vector_norm(block.diagonal(), 1)) if diagonal else 0.0
        block.sub_(self.centre)  # (r, k) cos − mean
        l2 = float(torch.linalg.vector_norm(block)) ** 2
        d2 = float(torch.linalg.vector_norm(block.diagonal())) ** 2 if diagonal else 0.0
        weight = 0.5 if diagonal else 1.0
        self.absolutes += weight * (l1 - d1)
        self.squares += weight * (l2 - d2)

    def result(self) -> tuple[float, float]:
        """(equiangularity, maximal angle)."""
        return (max(self.squares, 0.0) / self.pairs) ** 0.5, self.absolutes / self.pairs


def tiled_angles(X: torch.Tensor, tile: int) -> tuple[float, float]:
    """(equiangularity, maximal angle) of the rows of X (C, d): the population std over pairs of
    cos(x_c, x_c') and the mean of |cos + 1/(C−1)|, exact over all pairs by tiles."""
    U = unit_rows(X)  # (C, d) float64
    C = int(U.shape[0])
    tile = max(1, min(tile, MAX_TILE, C))
    sums = AngleSums(U)
    buffers = TileBuffers(tile, U.device, 1)
    for rows, cols, diagonal in upper_tiles(C, tile):
        block = buffers.get(0, rows.stop - rows.start, cols.stop - cols.start)
        torch.mm(U[rows], U[cols].T, out=block)
        sums.add(block, diagonal)
    return sums.result()


def tiled_cdnv(M: torch.Tensor, variances: torch.Tensor, tile: int) -> float:
    """Mean over pairs c < c' of (σ_c² + σ_c'²) / (2‖m_c − m_c'‖²) by tiles. M: centred means (C, d),
    variances: (C,) σ_c²; the same distance formula as the dense :func:`collapse.nc1_cdnv`."""
    return _means_pairs(M, variances, tile, angles=False)[0]


def tiled_means_pairs(
    M: torch.Tensor, variances: torch.Tensor, tile: int
) -> tuple[float, tuple[float, float]]:
    """(CDNV, (equiangularity, maximal angle) of M's rows) from ONE Gram tile M_r M_cᵀ per tile: the squared distances are ‖m‖² + ‖m'‖² − 2·G and the cosines G/(‖m‖‖m'‖), so the
    class means' pairs cost one float64 GEMM instead of two (:func:`tiled_cdnv`, :func:`tiled_angles`).
    The cosines differ from :func:`tiled_angles`' (normalise, then multiply) by rounding only."""
    cdnv, angles = _means_pairs(M, variances, tile, angles=True)
    return cdnv, angles if angles is not None else (math.nan, math.nan)


def _means_pairs(
    M: torch.Tensor, variances: torch.Tensor, tile: int, angles: bool
) -> tuple[float, tuple[float, float] | None]:
    """:func:`tiled_means_pairs`, the angles only with ``angles``."""
    M = M.to(torch.float64)
    C = int(M.shape[0])
    tile = max(1, min(tile, MAX_TILE, C))
    norms = torch.linalg.vector_norm(M, dim=1)  # (C,)
    sq_norms = norms * norms  # (C,)
    inverse = torch.where(norms > 0, 1.0 / norms.clamp_min(torch.finfo(torch.float64).tiny), 0.0)  # (C,)
    v = variances.to(torch.float64)  # (C,)
    sums = AngleSums(unit_rows(M)) if angles else None
    buffers = TileBuffers(tile, M.device, 3 if angles else 2)
    total = 0.0
    for rows, cols, diagonal in upper_tiles(C, tile):
        r, k = rows.stop - rows.start, cols.stop - cols.start
        distances, ratios = buffers.get(0, r, k), buffers.get(1, r, k)
        torch.mm(M[rows], M[cols].T, out=distances)  # (r, k) the Gram tile
        if sums is not None:
            cosines = buffers.get(2, r, k)
            torch.mul(distances, inverse[rows, None], out=cosines).mul_(inverse[None, cols])
            sums.add(cosines, diagonal)
        distances.mul_(-2.0).add_(sq_norms[rows, None]).add_(sq_norms[None, cols]).clamp_min_(0.0)
        if diagonal:
            distances.diagonal().fill_(math.inf)  # a class with itself: ratio 0, not a pair
        torch.add(v[rows, None], v[None, cols], out=ratios)
        ratios.div_(distances)
        total += (0.5 if diagonal else 1.0) * float(ratios.sum())
    return total / (2.0 * num_pairs(C)), None if sums is None else sums.result()
