"""The mathematical range of every reported metric, asserted at the report boundary (issue 19).

A metric outside its range is a bug or a degenerate input slipping through, never a measurement: it is
reported as null with a note naming the metric and the value (:data:`OUT_OF_RANGE`, a phrase tests look
for: no valid input may ever produce it). Every report goes through :func:`check_ranges` (the Report
object, the monitor, study records); resumed study records are refused when it finds anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

#: The phrase every out-of-range note holds.
OUT_OF_RANGE = "outside its range"
#: Rounding slack on a bound b: |b|·REL_TOL + ABS_TOL; a value within it is clamped to the bound.
REL_TOL = 1e-9
ABS_TOL = 1e-9

_UNIT = ("nc4", "mir", "hdr", "mir_samples", "hdr_samples", "accuracy", "accuracy_train", "accuracy_test")
_NON_NEGATIVE = ("nc1", "nc1_cdnv", "nc2_equinorm_means", "nc2_equinorm_head")
#: Fixed ranges: std of cosines ≤ 1; |cos + 1/(C−1)| ≤ 2; squared distance of two unit-norm matrices ≤ 4.
_FIXED: dict[str, tuple[float, float]] = {
    **dict.fromkeys(_UNIT, (0.0, 1.0)),
    **dict.fromkeys(_NON_NEGATIVE, (0.0, math.inf)),
    "nc2_equiangular_means": (0.0, 1.0),
    "nc2_equiangular_head": (0.0, 1.0),
    "nc2_maxangle_means": (0.0, 2.0),
    "nc2_maxangle_head": (0.0, 2.0),
    "nc3": (0.0, 4.0),
}


def metric_range(
    key: str, metrics: Mapping[str, object], num_classes: int | None, num_samples: int | None
) -> tuple[float, float] | None:
    """The closed range of ``key`` (None: a key with no known range, e.g. a user's extra scalar).
    Entropies of an n×n unit-diagonal Gram lie in [0, log n]; an MI in [0, min of its two entropies]."""
    if key in _FIXED:
        return _FIXED[key]
    log_c = math.log(num_classes) if num_classes and num_classes > 0 else math.inf
    log_n = math.log(num_samples) if num_samples and num_samples > 0 else math.inf
    if key in ("h_head", "h_means", "h_labels"):
        return 0.0, log_c
    if key == "h_samples":
        return 0.0, log_n
    if key == "mi":
        return 0.0, min(_number(metrics.get("h_head")), _number(metrics.get("h_means")), log_c)
    if key == "mi_samples":
        return 0.0, min(_number(metrics.get("h_samples")), _number(metrics.get("h_labels")), log_n)
    if key == "mi_samples_onehot":
        return 0.0, min(_number(metrics.get("h_samples")), log_n)
    return None


def _number(value: object) -> float:
    """A finite bound from another metric, or +inf when it is null/undefined (no bound from it)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return math.inf


def check_ranges(
    metrics: Mapping[str, float | None],
    num_classes: int | None = None,
    num_samples: int | None = None,
    slack: Mapping[str, float] | None = None,
) -> tuple[dict[str, float | None], list[str]]:
    """(metrics, notes): every metric with a known range inside it (rounding within the tolerance is
    clamped to the bound), an out-of-range one None with a note naming it and its value. NaN stays
    (undefined, noted elsewhere); ±inf where a bound is finite is out of range. ``slack`` widens a
    metric's tolerance (an SLQ estimate's 95% half-width)."""
    checked: dict[str, float | None] = dict(metrics)
    notes: list[str] = []
    for key, value in metrics.items():
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isnan(value):
            continue
        bounds = metric_range(key, checked, num_classes, num_samples)
        if bounds is None:
            continue
        low, high = bounds
        if (
            math.isinf(value) and math.isinf(high) and value > 0
        ):  # a zero denominator: undefined, noted elsewhere
            continue
        extra = (slack or {}).get(key, 0.0)
        tol_low = abs(low) * REL_TOL + ABS_TOL + extra
        tol_high = (abs(high) * REL_TOL + ABS_TOL + extra) if math.isfinite(high) else 0.0
        if math.isinf(value) or value < low - tol_low or value > high + tol_high:
            checked[key] = None
            notes.append(
                f"{key} = {value:.6g} is {OUT_OF_RANGE} [{low:.6g}, {high:.6g}] (reported as null; "
                "please report this input)"
            )
        else:
            checked[key] = min(max(float(value), low), high)
    return checked, notes
