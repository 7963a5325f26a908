"""Which route computes each class-level quantity, chosen from C, d and a memory budget (docs/METRICS.md,
"Routes for large class counts").

Three C×C Grams and their eigensolve cost 8·C² bytes each and O(C³) time: fine for C in the hundreds,
impossible for a vocabulary (C = 50,257 needs 20 GB per Gram). The routes:

- ``dense``: the C×C Grams and one batched ``eigvalsh`` (the historical route), C×C pairwise matrices.
- ``factored``: H(K_W), H(K_M) from the d×d Gram ÛᵀÛ (the same non-zero spectrum as ÛÛᵀ; exact);
  H(K_W∘K_M) from the d²×d² Gram ZᵀZ of the Kronecker rows ŵ_c⊗m̂_c when d² ≤ C (exact), else by
  stochastic Lanczos quadrature (SLQ, an estimate with a 95% interval); NC2 and CDNV over C×C tiles
  (exact sums over all pairs); NC3 is O(C·d) on every route.

``auto`` keeps ``dense`` while C ≤ DENSE_MAX_C and its matrices fit the budget, else ``factored``; under
``auto`` the SLQ matvec may hold K_W∘K_M once in float32 when 4·C² bytes fit the budget (``factored``
never holds a C×C matrix).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nc_audit.core.errors import InputError
from nc_audit.metrics.tiled import MAX_TILE

ROUTES = ("auto", "dense", "factored")
#: Memory the class-level routes may take for their largest temporaries (bytes).
CLASS_BUDGET_BYTES = 512 * 2**20
#: ``auto`` keeps the dense eigensolves up to this many classes (an eigvalsh of 2048² takes ~2 s on 2 cores).
DENSE_MAX_C = 2048
#: ``--class-route dense`` is refused when its matrices would need more than this (bytes).
DENSE_LIMIT_BYTES = 8 * 2**30
#: The exact Kronecker route's d²×d² eigensolve is used up to this size under ``auto`` (larger: SLQ).
KRONECKER_MAX_N = 4096
#: C×C float64 matrices the dense route holds at once: 3 Grams per checkpoint, their stacked copy, the
#: eigensolver's workspace.
DENSE_MATRICES = 8
#: C×C float64 temporaries of one dense pairwise metric (cosines, triu indices, gathered pairs).
PAIRWISE_MATRICES = 6
#: d²×d² float64 matrices the Kronecker route holds (the Gram, the eigensolver's copy and workspace).
KRONECKER_MATRICES = 3
#: float64 temporaries of one tile of the tiled pairwise kernels (tile values, masks, terms).
TILE_TEMPORARIES = 6


@dataclass(frozen=True)
class ClassRoutes:
    """The route of each class-level quantity (what a report names in its conventions).

    entropies   'dense' | 'factored'     H(K_W), H(K_M)
    joint       'dense' | 'kronecker' | 'slq'   H(K_W∘K_M)
    slq_matvec  'explicit' | 'factored' | None  how SLQ applies K_W∘K_M (explicit: held once in float32)
    pairwise    'dense' | 'tiled'         NC2 angles, CDNV
    tile        rows per tile side of the tiled route (None when dense)
    """

    entropies: str
    joint: str
    slq_matvec: str | None
    pairwise: str
    tile: int | None
    budget_bytes: int

    def conventions(self) -> dict[str, str]:
        """What a report says about these routes (its conventions)."""
        entropies = (
            "dense C x C Grams, eigvalsh (exact)"
            if self.entropies == "dense"
            else "factored: eigenvalues of the smaller Gram (d x d or C x C), exact"
        )
        joint = {
            "dense": "dense C x C Hadamard product, eigvalsh (exact)",
            "kronecker": "d^2 x d^2 Gram of the Kronecker rows w_c (x) m_c, exact",
            "slq": f"stochastic Lanczos quadrature ({self.slq_matvec} matvec), 95% interval beside MI and MIR",
        }[self.joint]
        pairwise = (
            "dense C x C pairs"
            if self.pairwise == "dense"
            else f"tiled over {self.tile} x {self.tile} blocks, exact float64 sums over all pairs"
        )
        return {"class_entropies": entropies, "class_joint_entropy": joint, "class_pairs": pairwise}


def dense_routes(budget_bytes: int = CLASS_BUDGET_BYTES) -> ClassRoutes:
    """Every quantity by the dense route (the default of the metric functions)."""
    return ClassRoutes("dense", "dense", None, "dense", None, budget_bytes)


def dense_bytes(C: int, batch: int = 1) -> int:
    """Bytes the dense entropy route holds for ``batch`` checkpoints of C classes."""
    return DENSE_MATRICES * 8 * batch * C * C


def tile_size(C: int, budget_bytes: int) -> int:
    """Rows per tile side so that TILE_TEMPORARIES float64 tiles fit ``budget_bytes`` (at least 1, at most
    MAX_TILE: larger tiles only cost cache misses)."""
    side = math.isqrt(max(1, budget_bytes // (8 * TILE_TEMPORARIES)))
    return max(1, min(C, side, MAX_TILE))


def plan_routes(
    C: int, d: int, batch: int = 1, route: str = "auto", budget_bytes: int = CLASS_BUDGET_BYTES
) -> ClassRoutes:
    """The routes for ``batch`` checkpoints of C classes in d dimensions (see the module docstring).

    ``route='dense'`` above DENSE_LIMIT_BYTES is an InputError (memory is checked before allocating)."""
    if route not in ROUTES:
        raise InputError(f"--class-route {route!r}: expected one of {', '.join(ROUTES)}")
    if route == "dense":
        needed = dense_bytes(C, batch)
        if needed > DENSE_LIMIT_BYTES:
            raise InputError(
                f"--class-route dense: {C} classes need {needed / 2**30:.1f} GiB of C x C matrices "
                f"(limit {DENSE_LIMIT_BYTES / 2**30:.0f} GiB); use --class-route auto or factored"
            )
        return dense_routes(budget_bytes)
    if route == "auto" and C <= DENSE_MAX_C and dense_bytes(C, batch) <= budget_bytes:
        return dense_routes(budget_bytes)
    kronecker_fits = d * d <= C and KRONECKER_MATRICES * 8 * d**4 <= budget_bytes
    if route == "auto":
        kronecker_fits = kronecker_fits and d * d <= KRONECKER_MAX_N
    if kronecker_fits:
        joint, matvec = "kronecker", None
    else:
        explicit = route == "auto" and 4 * C * C <= budget_bytes
        joint, matvec = "slq", "explicit" if explicit else "factored"
    pairwise_dense = route == "auto" and PAIRWISE_MATRICES * 8 * C * C <= budget_bytes
    if pairwise_dense:
        return ClassRoutes("factored", joint, matvec, "dense", None, budget_bytes)
    return ClassRoutes("factored", joint, matvec, "tiled", tile_size(C, budget_bytes), budget_bytes)
