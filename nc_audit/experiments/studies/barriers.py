"""Barriers and dips along a linear path between two networks (docs/METRICS.md, "Linear mode connectivity").

For a quantity f measured on the grid α_0 = 0 < α_1 < … < α_n = 1 of θ(α) = (1 − α)·θ_A + α·θ_B, its
excess over the straight line between the endpoint values is

    Δf(α) = f(α) − [(1 − α)·f(0) + α·f(1)],

the **barrier** is max_α Δf(α) (loss, error: the path is worse than the endpoints) and the **dip**
max_α −Δf(α) (MIR falls below the line; HDR's rise is the barrier of HDR). Both are 0 at the endpoints, so
never negative on the grid. This is the barrier of Entezari et al. (2022); Frankle et al. (2020) take the
error's excess over the mean of the endpoint errors, max_α f(α) − (f(0) + f(1))/2, which differs from it by
at most |f(0) − f(1)|/2 (the children's errors differ by a few test digits).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from nc_audit.core.errors import InputError

#: A curve: (α, value) in increasing α from 0 to 1; a value is None where the metric is undefined.
Curve = Sequence[tuple[float, float | None]]


def check_curve(curve: Curve, where: str) -> None:
    """InputError naming ``where`` unless α starts at 0, ends at 1 and increases, with finite values."""
    alphas = [alpha for alpha, _ in curve]
    if len(alphas) < 2 or alphas[0] != 0.0 or alphas[-1] != 1.0:
        raise InputError(f"{where}: a path needs α from 0 to 1, found {alphas[:3]}…")
    if any(b <= a for a, b in itertools.pairwise(alphas)):
        raise InputError(f"{where}: the α of a path must increase")
    if any(value is not None and not math.isfinite(value) for _, value in curve):
        raise InputError(f"{where}: a path holds a value that is not a finite number")


def excess(curve: Curve) -> list[float] | None:
    """Δf(α) at every α of the curve (None when a value is undefined)."""
    values = [float(value) for _, value in curve if value is not None]
    if len(values) != len(curve):
        return None
    first, last = values[0], values[-1]
    return [
        value - ((1.0 - alpha) * first + alpha * last)
        for (alpha, _), value in zip(curve, values, strict=True)
    ]


def barrier(curve: Curve) -> float | None:
    """max_α Δf(α): how far the path rises above the line between its endpoint values (≥ 0)."""
    above = excess(curve)
    return None if above is None else max(above) + 0.0  # + 0.0: no −0.0


def dip(curve: Curve) -> float | None:
    """max_α −Δf(α): how far the path falls below the line between its endpoint values (≥ 0)."""
    above = excess(curve)
    return None if above is None else max(-value for value in above) + 0.0  # + 0.0: no −0.0


def value_at(curve: Curve, alpha: float) -> float | None:
    """The value at ``alpha`` (a grid point; None when the grid does not hold it or it is undefined)."""
    for point, value in curve:
        if math.isclose(point, alpha, abs_tol=1e-12):
            return value
    return None
