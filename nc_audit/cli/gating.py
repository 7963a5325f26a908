"""Gate settings from flags and [tool.nc-audit] defaults, and their application to reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.gating.config import load_defaults
from nc_audit.gating.rules import (
    Rule,
    compare_to_baseline,
    evaluate_rules,
    gateable,
    load_baseline,
    parse_rule,
)
from nc_audit.gating.trajectory import gate_trajectory as _gate_trajectory
from nc_audit.metrics.catalog import METRICS


@dataclass
class GateSettings:
    """What a run is gated on: threshold rules and an optional baseline with its tolerance."""

    rules: list[Rule] = field(default_factory=list)
    baseline: dict[str, Any] | None = None
    baseline_path: Path | None = None
    tolerance: float | dict[str, float] = 0.0
    output_format: str = "table"
    device: str = "auto"
    cache_dir: Path | None = None


def resolve_settings(
    fail_on: list[str] | None,
    baseline: Path | None,
    tolerance: float | None,
    output_format: str | None,
    device: str | None,
) -> GateSettings:
    """Flags win over [tool.nc-audit] of the nearest pyproject.toml; rules and baseline are validated now,
    before any measurement, so a typo fails in a second with exit code 2."""
    defaults = load_defaults()
    rule_texts = list(fail_on) if fail_on else list(defaults.get("fail_on") or [])
    baseline_path = baseline or defaults.get("baseline")
    return GateSettings(
        rules=[parse_rule(text, METRICS) for text in rule_texts],
        baseline=load_baseline(baseline_path) if baseline_path else None,
        baseline_path=Path(baseline_path) if baseline_path else None,
        tolerance=tolerance if tolerance is not None else defaults.get("tolerance", 0.0),
        output_format=output_format or defaults.get("format") or "table",
        device=device or defaults.get("device") or "auto",
        cache_dir=defaults.get("cache_dir"),
    )


def apply_gates(report_dict: dict[str, Any], settings: GateSettings) -> list[dict[str, Any]]:
    """The checks of one report: its threshold rules, then its baseline comparison."""
    checks = evaluate_rules(gateable(report_dict), settings.rules)
    if settings.baseline is not None:
        compared = compare_to_baseline(report_dict, settings.baseline, settings.tolerance)
        _require_checks(compared, settings)
        checks += compared
    return checks


def _require_checks(compared: list[dict[str, Any]], settings: GateSettings) -> None:
    """A baseline comparison that checks nothing is an error, never a silent pass."""
    if not compared:
        raise InputError(
            f"{settings.baseline_path or 'the baseline'}: shares no metric value with this run (none of its "
            "metrics is a number that this run measures against an NC target): a comparison would check "
            "nothing"
        )


def gate_trajectory(trajectory: dict[str, Any], settings: GateSettings, mode: str = "last") -> None:
    """Checks for the records of a trajectory that ``mode`` gates (last, best or all), in place; a
    baseline that checks nothing is an error."""
    _gate_trajectory(trajectory, settings.rules, settings.baseline, settings.tolerance, mode)
    if settings.baseline is not None and trajectory["records"]:
        compared = [
            check for record in trajectory["records"] for check in record["checks"] if "baseline" in check
        ]
        _require_checks(compared, settings)
