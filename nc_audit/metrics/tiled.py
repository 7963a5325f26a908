"""Pairwise class metrics over C×C tiles: NC2 equiangularity and maximal angle, CDNV (docs/METRICS.md).

Exact float64 sums over all C(C−1)/2 pairs c < c', one tile of ``tile × tile`` pairs at a time (the
tiles of the upper triangle, the diagonal tiles masked to c < c'), so memory is O(tile²) whatever C.
The mean cosine comes first in closed form, Σ_{c<c'} cos = (‖Σ_c û_c‖² − Σ_c ‖û_c‖²)/2, so the spread is
one pass of Σ (cos − mean)²: no cancellation. Same formulas as :mod:`nc_audit.metrics.collapse`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from nc_audit.core.linalg import unit_rows

#: A tile's values: (rows slice, columns slice) -> (rows, columns) float64.
TileValues = Callable[[slice, slice], torch.Tensor]


def upper_tiles(C: int, tile: int) -> Iterator[tuple[slice, slice, bool]]:
    """(rows, columns, diagonal) of the tiles covering the pairs c < c' of C items; ``tile`` ≥ 1 need not
    divide C. A diagonal tile holds pairs with c ≥ c' too (mask them with :func:`strict_upper`)."""
    for a in range(0, C, tile):
        for c in range(a, C, tile):
            yield slice(a, min(a + tile, C)), slice(c, min(c + tile, C)), c == a


def strict_upper(n: int, device: torch.device) -> torch.Tensor:
    """Boolean (n, n) mask of the pairs above the diagonal."""
    return torch.ones(n, n, dtype=torch.bool, device=device).triu(1)


def tile_sums(
    C: int, tile: int, values: TileValues, terms: Callable[[torch.Tensor], list[torch.Tensor]]
) -> list[float]:
    """Σ over pairs c < c' of each of ``terms(values(tile))``, accumulated in float64 tile by tile."""
    totals: list[torch.Tensor] | None = None
    for rows, cols, diagonal in upper_tiles(C, tile):
        block = values(rows, cols)  # (r, k)
        parts = terms(block)
        if diagonal:
            mask = strict_upper(block.shape[0], block.device)
            parts = [part[mask] for part in parts]
        sums = [part.sum(dtype=torch.float64) for part in parts]
        totals = sums if totals is None else [t + s for t, s in zip(totals, sums, strict=True)]
    return [float(t) for t in totals or []]


def num_pairs(C: int) -> int:
    return C * (C - 1) // 2


def tiled_angles(X: torch.Tensor, tile: int) -> tuple[float, float]:
    """(equiangularity, maximal angle) of the rows of X (C, d): the population std over pairs of
    cos(x_c, x_c') and the mean of |cos + 1/(C−1)|, exact over all pairs by tiles."""
    U = unit_rows(X)  # (C, d) float64
    C = int(U.shape[0])
    pairs = num_pairs(C)
    total = U.sum(0)  # (d,)
    mean = float(((total * total).sum() - (U * U).sum()) / 2.0) / pairs
    shift = 1.0 / (C - 1)

    def cosines(rows: slice, cols: slice) -> torch.Tensor:
        return U[rows] @ U[cols].T  # (r, k)

    def terms(block: torch.Tensor) -> list[torch.Tensor]:
        return [(block - mean).square(), (block + shift).abs()]

    squares, absolutes = tile_sums(C, tile, cosines, terms)
    return (squares / pairs) ** 0.5, absolutes / pairs


def tiled_cdnv(M: torch.Tensor, variances: torch.Tensor, tile: int) -> float:
    """Mean over pairs c < c' of (σ_c² + σ_c'²) / (2‖m_c − m_c'‖²) by tiles. M: centred means (C, d),
    variances: (C,) σ_c²; the same distance formula as the dense :func:`collapse.nc1_cdnv`."""
    M = M.to(torch.float64)
    sq_norms = (M * M).sum(1)  # (C,)
    v = variances.to(torch.float64)  # (C,)

    def ratios(rows: slice, cols: slice) -> torch.Tensor:
        distances = (sq_norms[rows, None] + sq_norms[None, cols] - 2.0 * (M[rows] @ M[cols].T)).clamp_min(0.0)
        return (v[rows, None] + v[None, cols]) / (2.0 * distances)  # (r, k)

    (total,) = tile_sums(int(M.shape[0]), tile, ratios, lambda block: [block])
    return total / num_pairs(int(M.shape[0]))
