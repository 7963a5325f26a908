"""The gates of one library call: ``fail_on``, ``baseline`` and ``tolerance`` of its MeasureOptions, read
before anything is measured (a typo or a bad baseline fails at once), then held against the results by
the one gate (:func:`nc_audit.gating.gate.gate`) — for ``measure``, ``measure_arrays``,
``measure_trajectory`` and ``track --task next-token`` alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload

from nc_audit.gating.baseline import Baseline, Tolerance, load_baseline
from nc_audit.gating.gate import gate
from nc_audit.gating.rules import Rule, parse_rules
from nc_audit.measurement.options import MeasureOptions
from nc_audit.report.model import Report, Trajectory


@dataclass(frozen=True)
class Gating:
    """Parsed rules, the loaded baseline and the tolerance of a call."""

    rules: list[Rule]
    baseline: Baseline | None
    tolerance: Tolerance

    @classmethod
    def of(cls, options: MeasureOptions) -> Gating:
        baseline = load_baseline(options.baseline) if options.baseline is not None else None
        return cls(parse_rules(options.fail_on), baseline, options.tolerance)

    @overload
    def __call__(self, results: Report, which: str = "last") -> Report: ...
    @overload
    def __call__(self, results: Trajectory, which: str = "last") -> Trajectory: ...
    def __call__(self, results: Report | Trajectory, which: str = "last") -> Report | Trajectory:
        """``results`` gated on the records ``which`` (last | best | all) chooses."""
        return gate(results, self.rules, self.baseline, self.tolerance, which)
