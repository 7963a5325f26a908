"""Baselines: a report or trajectory written by ``--json`` earlier, read as typed results (untrusted:
bounded by the JSON reader, every part checked), and the baseline checks of one report against one of its
records: no metric may move away from its NC target by more than a tolerance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nc_audit.core.errors import InputError
from nc_audit.io.guards.files import load_json
from nc_audit.report.model import Check, Report, Trajectory, json_number
from nc_audit.report.numbers import significant

#: Slack for float round-off when a distance grows by exactly the tolerance.
_ROUNDOFF = 1e-12
#: A tolerance: one number, or one per metric ("*": the default, else 0).
Tolerance = float | Mapping[str, float]


@dataclass(frozen=True)
class Baseline:
    """The reports a run is compared with, and where they came from (named in every refusal)."""

    trajectory: Trajectory
    where: str = "the baseline"


def load_baseline(path: str | Path) -> Baseline:
    """Read a report or trajectory JSON written by ``--json`` to compare a run against.

    Raises InputError for a missing or unreadable file, invalid JSON, a schema other than
    ``nc-audit-report/1`` / ``nc-audit-trajectory/1`` (naming the schema found), a malformed record, or
    a baseline without a single metric value.
    """
    path = Path(path)
    missing = f"{path}: baseline not found; write one with `nc-audit measure ... --json {path}`"
    data = load_json(path, "baseline", missing=missing)  # a regular file, bounded in size, depth, digits
    trajectory = Trajectory.from_dict(data, str(path))
    if not any(value is not None for record in trajectory for value in record.metrics.values()):
        raise InputError(
            f"{path}: the baseline holds no metric value (every metric is null, NaN, infinite or not a "
            "number): a comparison with it would check nothing"
        )
    return Baseline(trajectory, str(path))


def tolerance_for(tolerance: Tolerance, metric: str) -> float:
    """The tolerance of one metric: a single number, or a per-metric mapping ('*' = default, else 0)."""
    value = tolerance.get(metric, tolerance.get("*", 0.0)) if isinstance(tolerance, Mapping) else tolerance
    value = float(value)
    if not value >= 0:
        raise InputError(f"the baseline tolerance for {metric} is {value}; it must be a number >= 0")
    return value


def compare(current: Report, baseline: Report, tolerance: Tolerance) -> list[Check]:
    """Baseline checks of ``current`` against one baseline report, for each metric with an NC target in
    ``current`` and a value in the baseline: distance = |value − target| (for MIR the target is
    MIR_NC(C)); a check fails when distance_now − distance_baseline > tolerance, and when the metric
    became undefined. InputError when the class counts differ."""
    c_now, c_base = current.features.get("num_classes"), baseline.features.get("num_classes")
    if c_now is not None and c_base is not None and c_now != c_base:
        raise InputError(
            f"the baseline has C = {c_base} classes and this run C = {c_now}; compare like with like"
        )
    checks: list[Check] = []
    for key in current.metrics:
        target, base_value = json_number(current.targets.get(key)), json_number(baseline.metrics.get(key))
        if key not in baseline.metrics or target is None or base_value is None:
            continue  # no NC target to move away from, or nothing to regress from
        value = json_number(current.metrics.get(key))
        tol = tolerance_for(tolerance, key)
        base_distance = abs(base_value - target)
        distance = None if value is None else abs(value - target)
        passed = distance is not None and distance - base_distance <= tol + _ROUNDOFF
        moved = "undefined" if distance is None else significant(distance, 4)
        checks.append(
            Check(
                "baseline",
                rule=f"baseline {key}: |Δ to NC| {significant(base_distance, 4)} → {moved} (tol {significant(tol, 6)})",
                name=f"baseline {key}",
                metric=key,
                value=value,
                passed=passed,
                reason=None if value is not None else "undefined",
                baseline=base_value,
                target=target,
                distance=distance,
                baseline_distance=base_distance,
                tolerance=tol,
            )
        )
    return checks


def record_key(record: Report) -> tuple[str | None, int | None]:
    """What identifies a trajectory record: its label and its step."""
    return record.label, record.step
