"""Gate settings from flags and [tool.nc-audit] defaults; the gating itself is :func:`nc_audit.gating.gate.gate`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nc_audit.gating.baseline import Baseline, Tolerance, load_baseline
from nc_audit.gating.config import load_defaults
from nc_audit.gating.rules import Rule, parse_rules


@dataclass(frozen=True)
class GateSettings:
    """What a run is gated on: threshold rules (as typed, and parsed) and an optional baseline with its
    tolerance; and the other project defaults a command needs."""

    fail_on: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    baseline: Baseline | None = None
    baseline_path: Path | None = None
    tolerance: Tolerance = 0.0
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
    before any measurement, so a typo fails in a second with exit code 2. Gates taken from the
    pyproject.toml are announced once on stderr, with the Monitor's line (:func:`announce_project_gates`)."""
    defaults = load_defaults()
    rule_texts = tuple(fail_on) if fail_on else tuple(defaults.get("fail_on") or ())
    baseline_path = baseline or defaults.get("baseline")
    settings = GateSettings(
        fail_on=rule_texts,
        rules=tuple(parse_rules(rule_texts)),
        baseline=load_baseline(baseline_path) if baseline_path else None,
        baseline_path=Path(baseline_path) if baseline_path else None,
        tolerance=tolerance if tolerance is not None else defaults.get("tolerance", 0.0),
        output_format=output_format or defaults.get("format") or "table",
        device=device or defaults.get("device") or "auto",
        cache_dir=defaults.get("cache_dir"),
    )
    announce_project_gates(settings, defaults.get("config_path"), rules=not fail_on, baseline=not baseline)
    return settings


def announce_project_gates(
    settings: GateSettings, config_path: Path | None, rules: bool, baseline: bool
) -> None:
    """``gates from pyproject.toml: <rules> (<path>)`` on stderr when gates came from [tool.nc-audit]
    (``rules``/``baseline``: not given by a flag) — the Monitor's own line (MonitorGates.announce), naming
    only the gates the project gave."""
    from nc_audit.measurement.monitor_gates import MonitorGates

    MonitorGates(
        rules=settings.rules if rules else (),
        baseline=settings.baseline if baseline else None,
        baseline_path=settings.baseline_path if baseline else None,
        tolerance=settings.tolerance,
        config_path=config_path,
    ).announce()
