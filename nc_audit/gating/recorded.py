"""The gates a run brought with it: ``nc-audit track run.jsonl`` given no gates of its own.

A Monitor (and so a training callback) gates each record it writes with its ``fail_on``/``baseline``/
``tolerance`` (measurement/monitor_gates.py) and stores the checks in the record. ``track`` given rules or
a baseline (``--fail-on``, ``--baseline``, or ``[tool.nc-audit]``) gates the records by them through the
one gate (gating/gate.py), which replaces the recorded checks. Given none, the run's own checks stand, on
the records ``--gate`` chooses (``last``, ``best``, ``all``, as for any gate; the others are shown without
checks): a threshold check is evaluated again from its rule against the record's own values, so a record
never passes a rule its numbers fail; a baseline comparison is kept as recorded (its baseline file is not
at hand); a check of neither kind keeps its recorded verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from nc_audit.core.errors import InputError
from nc_audit.gating.baseline import Baseline, Tolerance
from nc_audit.gating.gate import gate, gated_indices
from nc_audit.gating.rules import Rule, evaluate_rules, parse_rules
from nc_audit.report.model import Check, Report, Trajectory


def recorded_checks(record: Report, where: str) -> tuple[Check, ...]:
    """``record``'s own checks, each threshold evaluated again from its rule (see the module docstring)."""
    checks: list[Check] = []
    for check in record.checks:
        if check.kind != "threshold":
            checks.append(check)
            continue
        try:
            rules = parse_rules([check.rule])
        except InputError as error:
            raise InputError(f"{where}: a recorded check: {error}") from None
        checks.extend(evaluate_rules(record.gateable(), rules))
    return tuple(checks)


def gate_recorded(trajectory: Trajectory, which: str, where: str) -> Trajectory:
    """``trajectory`` held to the checks its records carry, on the records ``which`` chooses."""
    records = trajectory.records
    chosen = set(gated_indices(records, which))
    gated = tuple(
        record.changed(
            checks=recorded_checks(record, f"{where}: record {index}") if index in chosen else (),
            gated=index in chosen,
        )
        for index, record in enumerate(records)
    )
    return replace(trajectory, records=gated, gate=which)


def gate_run(
    trajectory: Trajectory,
    rules: Sequence[Rule | str],
    baseline: Baseline | Path | str | None,
    tolerance: Tolerance,
    which: str,
    where: str,
) -> Trajectory:
    """A recorded run (a Monitor's .jsonl) gated by ``rules`` and ``baseline`` when any is given (the one
    gate), else by the checks its records carry (:func:`gate_recorded`)."""
    if rules or baseline is not None:
        return gate(trajectory, rules, baseline, tolerance, which)
    return gate_recorded(trajectory, which, where)
