"""Thresholds and baselines → checks → verdict (exit code 0 or 1).

Works on the plain JSON form of a report (schema ``nc-audit-report/1``, docs/DESIGN.md) and of a trajectory
(``nc-audit-trajectory/1``). A check is a dict ``{"rule": str, "name": str, "metric": str, "value": float | None, "passed": bool}``,
optionally with ``"reason"`` (why it failed without a number), ``"baseline"`` (the baseline's value) and
``"label"`` (the trajectory record it belongs to). ``name`` stays the same from run to run (``nc1 <= 0.5``,
``baseline nc1``), while ``rule`` may quote the measured values; a threshold check also holds ``op``
and ``threshold``, a baseline check ``target``, ``distance``, ``baseline_distance`` and ``tolerance``.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.core.formats import REPORT_SCHEMA, TRAJECTORY_SCHEMA
from nc_audit.io.guards.files import load_json

#: Comparison operators a rule may use; two-character ones first so that "<=" is not read as "<".
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}

RULE_FORM = "METRIC OP VALUE, e.g. 'nc1<=0.5', 'mir >= 0.9' or 'hdr<0.1' (OP: <=, <, >=, >, ==, !=)"
_RULE_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")

#: Slack for float round-off when a distance grows by exactly the tolerance.
_ROUNDOFF = 1e-12


def _fmt(x: float) -> str:
    """A float as short text that still round-trips typical thresholds (0.5, 1e-05, 0.952351)."""
    return format(x, ".12g")


@dataclass(frozen=True)
class Rule:
    """A threshold on one metric: ``metric op threshold`` must hold for the check to pass."""

    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {_fmt(self.threshold)}"

    def holds(self, value: float) -> bool:
        """Whether ``value`` satisfies the rule."""
        return OPERATORS[self.op](value, self.threshold)


def parse_rule(text: str, known_metrics: Iterable[str]) -> Rule:
    """Parse ``METRIC OP VALUE`` (spaces allowed) into a Rule; the metric must be one of ``known_metrics``.

    Raises InputError showing the expected form for malformed text, and listing the known metric keys
    (with the closest one suggested) for an unknown metric.
    """
    match = _RULE_RE.match(text)
    if match is None:
        raise InputError(f"cannot read the rule {text!r}: expected {RULE_FORM}")
    name, op, raw_value = match.groups()
    try:
        threshold = float(raw_value)
    except ValueError:
        raise InputError(
            f"cannot read the rule {text!r}: {raw_value!r} is not a number; expected {RULE_FORM}"
        ) from None
    if math.isnan(threshold):
        raise InputError(f"cannot read the rule {text!r}: the threshold is NaN; expected {RULE_FORM}")
    known = list(dict.fromkeys(known_metrics))
    metric = name if name in known else name.lower()
    if metric not in known:
        close = difflib.get_close_matches(metric, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InputError(
            f"unknown metric {name!r} in the rule {text!r}; {hint}known metrics: {', '.join(known)}"
        )
    return Rule(metric=metric, op=op, threshold=threshold)


def _as_number(value: Any) -> float | None:
    """A metric value as a float, or None when it is missing, null, NaN or infinite (undefined)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range
        return None
    return number if math.isfinite(number) else None


def evaluate_rules(metrics: Mapping[str, float | None], rules: Iterable[Rule]) -> list[dict[str, Any]]:
    """One check dict per rule; an undefined (None/NaN) or missing metric fails with a ``reason``."""
    checks: list[dict[str, Any]] = []
    for rule in rules:
        value = _as_number(metrics.get(rule.metric))
        check: dict[str, Any] = {"rule": str(rule), "name": str(rule), "metric": rule.metric, "value": value}
        check.update(op=rule.op, threshold=rule.threshold)
        if value is None:
            check["passed"] = False
            check["reason"] = "undefined" if rule.metric in metrics else "not measured"
        else:
            check["passed"] = bool(rule.holds(value))
        checks.append(check)
    return checks


def gateable(record: Mapping[str, Any]) -> dict[str, Any]:
    """The values rules may name: the metrics, plus the classifier accuracy kept under details."""
    details = record.get("details") or {}
    extra = {"accuracy": details["accuracy"]} if "accuracy" in details else {}
    return {**extra, **record["metrics"]}


def verdict(checks: Iterable[Mapping[str, Any]]) -> bool:
    """True when every check passed (also when there are none)."""
    return all(bool(check.get("passed")) for check in checks)


def _validate_record(record: Any, where: str) -> None:
    """Require the parts of a report that a comparison reads."""
    if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
        raise InputError(f"{where} has no 'metrics' object; pass a report written by nc-audit --json")


def load_baseline(path: str | Path) -> dict[str, Any]:
    """Read a report or trajectory JSON written by ``--json`` to compare a run against.

    Raises InputError for a missing or unreadable file, invalid JSON, or a schema other than
    ``nc-audit-report/1`` / ``nc-audit-trajectory/1`` (naming the schema found).
    """
    path = Path(path)
    missing = f"{path}: baseline not found; write one with `nc-audit measure ... --json {path}`"
    data = load_json(path, "baseline", missing=missing)  # a regular file, bounded in size, depth, digits
    if not isinstance(data, dict):
        raise InputError(
            f"{path}: expected a JSON object with schema {REPORT_SCHEMA!r} or {TRAJECTORY_SCHEMA!r}"
        )
    schema = data.get("schema")
    if schema == REPORT_SCHEMA:
        _validate_record(data, str(path))
    elif schema == TRAJECTORY_SCHEMA:
        records = data.get("records")
        if not isinstance(records, list) or not records:
            raise InputError(f"{path}: a trajectory baseline needs a non-empty 'records' list")
        for index, record in enumerate(records):
            _validate_record(record, f"{path}: record {index}")
    else:
        raise InputError(
            f"{path}: schema is {schema!r}, expected {REPORT_SCHEMA!r} or {TRAJECTORY_SCHEMA!r}; "
            "pass a report written by nc-audit --json"
        )
    records = data["records"] if schema == TRAJECTORY_SCHEMA else [data]
    if not any(_as_number(value) is not None for record in records for value in record["metrics"].values()):
        raise InputError(
            f"{path}: the baseline holds no metric value (every metric is null, NaN, infinite or not a "
            "number): a comparison with it would check nothing"
        )
    return data


def _tolerance_for(tolerance: float | Mapping[str, float], metric: str) -> float:
    """The tolerance of one metric: a single number, or a per-metric mapping ('*' = default, else 0)."""
    if isinstance(tolerance, Mapping):
        value = tolerance.get(metric, tolerance.get("*", 0.0))
    else:
        value = tolerance
    value = float(value)
    if not value >= 0:
        raise InputError(f"the baseline tolerance for {metric} is {value}; it must be a number >= 0")
    return value


def _num_classes(record: Mapping[str, Any]) -> Any:
    features = record.get("features")
    return features.get("num_classes") if isinstance(features, Mapping) else None


def _compare_record(
    current: Mapping[str, Any],
    baseline: Mapping[str, Any],
    tolerance: float | Mapping[str, float],
    metrics: Sequence[str] | None,
) -> list[dict[str, Any]]:
    """Checks for one report against one baseline report (both plain dicts)."""
    c_now, c_base = _num_classes(current), _num_classes(baseline)
    if c_now is not None and c_base is not None and c_now != c_base:
        raise InputError(
            f"the baseline has C = {c_base} classes and this run C = {c_now}; compare like with like"
        )
    targets: Mapping[str, Any] = current.get("targets") or {}
    now_metrics: Mapping[str, Any] = current.get("metrics") or {}
    base_metrics: Mapping[str, Any] = baseline.get("metrics") or {}
    if metrics is None:
        selected = [
            key for key in now_metrics if key in base_metrics and _as_number(targets.get(key)) is not None
        ]
    else:
        missing = [key for key in metrics if _as_number(targets.get(key)) is None]
        if missing:
            raise InputError(
                f"no NC target for {', '.join(missing)}; baseline comparisons need one of: {', '.join(targets)}"
            )
        selected = list(metrics)
    checks: list[dict[str, Any]] = []
    for key in selected:
        target = float(targets[key])
        value, base_value = _as_number(now_metrics.get(key)), _as_number(base_metrics.get(key))
        if base_value is None:
            continue  # nothing to regress from
        tol = _tolerance_for(tolerance, key)
        base_distance = abs(base_value - target)
        if value is None:
            moved, passed = "undefined", False
        else:
            distance = abs(value - target)
            moved, passed = f"{distance:.4g}", distance - base_distance <= tol + _ROUNDOFF
        check: dict[str, Any] = {
            "rule": f"baseline {key}: |Δ to NC| {base_distance:.4g} → {moved} (tol {tol:g})",
            "name": f"baseline {key}",
            "metric": key,
            "value": value,
            "baseline": base_value,
            "passed": passed,
            "target": target,
            "distance": None if value is None else abs(value - target),
            "baseline_distance": base_distance,
            "tolerance": tol,
        }
        if value is None:
            check["reason"] = "undefined"
        checks.append(check)
    return checks


def record_key(record: Mapping[str, Any]) -> tuple[Any, Any]:
    """What identifies a trajectory record: its label and its step."""
    return record.get("label"), record.get("step")


def compare_to_baseline(
    report: Mapping[str, Any],
    baseline: Mapping[str, Any],
    tolerance: float | Mapping[str, float],
    metrics: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Checks that no metric moved away from its NC target by more than ``tolerance`` since the baseline.

    For each metric with a target in ``report["targets"]`` and a value in both (or only ``metrics``):
    distance = |value − target| (for MIR the target is MIR_NC(C)); a check fails when
    distance_now − distance_baseline > tolerance, and when the metric became undefined. ``tolerance``
    is one number or a per-metric mapping (key ``"*"`` is the default, otherwise 0).

    Reports and baselines may each be a single report or a trajectory. Trajectory vs trajectory:
    records are matched by ``(label, step)`` and each check carries that ``label`` and ``step``; a single report vs a
    trajectory (either way round) uses the trajectory's last record. Raises InputError when the class
    counts differ or two trajectories share no label.
    """
    now_is_traj = report.get("schema") == TRAJECTORY_SCHEMA
    base_is_traj = baseline.get("schema") == TRAJECTORY_SCHEMA
    if now_is_traj and base_is_traj:
        # (label, step) identifies a record: a monitor's run writes one label on every step
        by_key = {record_key(record): record for record in baseline.get("records", [])}
        checks: list[dict[str, Any]] = []
        matched = 0
        for record in report.get("records", []):
            key = record_key(record)
            if key not in by_key:
                continue
            matched += 1
            for check in _compare_record(record, by_key[key], tolerance, metrics):
                checks.append({**check, "label": key[0], "step": key[1]})
        if not matched and report.get("records"):
            known = ", ".join(f"{label}@{step}" if step is not None else str(label) for label, step in by_key)
            raise InputError(
                "the baseline trajectory shares no checkpoint label (and step) with this run "
                f"(baseline: {known}); pass the baseline of the same checkpoints"
            )
        return checks
    current = report["records"][-1] if now_is_traj else report
    reference = baseline["records"][-1] if base_is_traj else baseline
    return _compare_record(current, reference, tolerance, metrics)
