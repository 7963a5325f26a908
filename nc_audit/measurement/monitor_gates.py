"""The gates a Monitor (and so a training callback) applies to each record it writes.

Given in code (``Monitor(..., fail_on=[...], baseline=..., tolerance=...)``) they are used as given;
given neither rules nor a baseline, a Monitor takes ``fail-on``, ``baseline`` and ``tolerance`` from
``[tool.nc-audit]`` of the nearest ``pyproject.toml`` — the project defaults that apply to every run — and
says so once, on stderr: ``gates from pyproject.toml: nc1 <= 0.5, nc4 <= 0.05 (/repo/pyproject.toml)``.
``fail_on=[]`` turns the project's gates off for this run.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from nc_audit.core.errors import InputError
from nc_audit.gating.baseline import Baseline, Tolerance, load_baseline
from nc_audit.gating.config import load_defaults
from nc_audit.gating.gate import gate
from nc_audit.gating.rules import Rule, parse_rules
from nc_audit.report.escape import visible
from nc_audit.report.model import Report


@dataclass(frozen=True)
class MonitorGates:
    """Threshold rules and an optional baseline (with its tolerance) for each record of a run;
    ``config_path`` is the pyproject.toml they came from, None when they were given in code."""

    rules: tuple[Rule, ...] = ()
    baseline: Baseline | None = None
    baseline_path: Path | None = None
    tolerance: Tolerance = 0.0
    config_path: Path | None = None

    @classmethod
    def resolve(
        cls,
        fail_on: Iterable[str] | str | None = None,
        baseline: Path | str | None = None,
        tolerance: float | Mapping[str, float] | None = None,
        start: Path | None = None,
    ) -> MonitorGates:
        """The gates given in code, else the project's (``start``: where the pyproject.toml is looked for,
        default the working folder); rules and baseline are checked now, before training starts."""
        config_path = None
        if fail_on is None and baseline is None:
            defaults = load_defaults(start)
            fail_on, baseline = defaults["fail_on"], defaults["baseline"]
            tolerance = defaults["tolerance"] if tolerance is None else tolerance
            if fail_on or baseline is not None:
                config_path = defaults["config_path"]
        texts = [fail_on] if isinstance(fail_on, str) else list(fail_on or ())
        try:
            return cls(
                rules=tuple(parse_rules(texts)),
                baseline=load_baseline(baseline) if baseline is not None else None,
                baseline_path=Path(baseline) if baseline is not None else None,
                tolerance=0.0 if tolerance is None else tolerance,
                config_path=config_path,
            )
        except InputError as error:
            if config_path is None:
                raise
            raise InputError(f"{config_path}: [tool.nc-audit]: {error}") from None

    @property
    def active(self) -> bool:
        return bool(self.rules) or self.baseline is not None

    def summary(self) -> str:
        """The rules and the baseline in words: ``nc1 <= 0.5, baseline reports/main.json (tolerance 0.02)``."""
        parts = [str(rule) for rule in self.rules]
        if self.baseline_path is not None:
            parts.append(f"baseline {self.baseline_path} (tolerance {self.tolerance})")
        return ", ".join(parts)

    def announce(self, stream: TextIO | None = None) -> None:
        """Say on ``stream`` (stderr) that gates from a pyproject.toml apply; nothing for gates given in code."""
        if self.config_path is not None and self.active:  # paths from a pull request: one visible line
            line = visible(f"gates from pyproject.toml: {self.summary()} ({self.config_path})")
            print(line, file=stream or sys.stderr)

    def gate(self, report: Report) -> Report:
        """``report`` with its ``checks`` from these gates, by the one gate (gating/gate.py): a baseline
        comparison that checks nothing is refused there, as in ``measure`` and ``track``."""
        return gate(report, self.rules, self.baseline, self.tolerance)
