"""The one gate: threshold rules and a baseline held against the records of a trajectory that ``which``
chooses; the library (``measure``, ``measure_arrays``, ``measure_trajectory``), the CLI (``measure``,
``track``), the Monitor and the callbacks all gate through :func:`gate`, so they agree on every verdict
and every refusal.

``which`` (``track --gate``) chooses the checkpoints that are gated:

- ``last`` (the default, for CI): only the last checkpoint in training order — the model the job ships.
  An untrained epoch 0 at the start of the run never fails the job.
- ``best``: only the checkpoint with the highest classifier accuracy on the measured split (the
  ``accuracy`` a report holds under ``details``, or a monitor record's ``accuracy`` metric); ties go to
  the later checkpoint. A trajectory without accuracies cannot be gated this way (InputError).
- ``all``: every checkpoint, each against its own rules and its baseline record.

The other checkpoints are still measured, shown and written; they get no checks (``gated: false``). A
gated record is compared with the baseline's record of the same label and step, else with the record
the same gate picks in the baseline (a single-report baseline: that report). A baseline comparison that
checks nothing is an error, never a silent pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal, overload

from nc_audit.core.errors import InputError
from nc_audit.gating.baseline import Baseline, Tolerance, compare, load_baseline, record_key
from nc_audit.gating.rules import Rule, evaluate_rules, parse_rules
from nc_audit.report.model import Check, Report, Trajectory, json_number

GATE_MODES = ("last", "best", "all")
Which = Literal["last", "best", "all"]


def accuracy_of(record: Report) -> float | None:
    """The record's classifier accuracy on the measured split, or None when it has none."""
    return json_number(record.gateable().get("accuracy"))


def gated_indices(records: Sequence[Report], which: str) -> list[int]:
    """Positions of the records that ``which`` gates (see the module docstring)."""
    if which not in GATE_MODES:
        raise InputError(f"unknown gate {which!r}; expected one of {', '.join(GATE_MODES)}")
    if not records:
        return []
    if which == "all":
        return list(range(len(records)))
    if which == "last":
        return [len(records) - 1]
    scored = [
        (accuracy, index)
        for index, record in enumerate(records)
        if (accuracy := accuracy_of(record)) is not None
    ]
    if not scored:
        raise InputError(
            "--gate best picks the checkpoint with the highest accuracy, but no checkpoint has one "
            "(measure with --data or dumps that hold logits, or use --gate last)"
        )
    return [max(scored)[1]]  # the highest accuracy; among equals, the later checkpoint


def baseline_record(baseline: Trajectory, record: Report, which: str) -> Report:
    """The baseline record ``record`` is compared with: the one of the same label and step when the
    baseline trajectory has it, else the one the same gate picks there; a single report as it is."""
    if baseline.single:
        return baseline[0]
    same = [other for other in baseline if record_key(other) == record_key(record)]
    return same[0] if same else baseline[gated_indices(baseline, which)[0]]


def _baseline_checks(
    records: Sequence[Report], chosen: list[int], baseline: Baseline, tolerance: Tolerance, which: str
) -> dict[int, list[Check]]:
    """The baseline checks of each gated record, by position."""
    reference = baseline.trajectory
    if which == "all" and not reference.single:  # each record against its own: matched by label and step
        by_key = {record_key(record): record for record in reference}
        matched = {
            index: by_key[record_key(records[index])]
            for index in chosen
            if record_key(records[index]) in by_key
        }
        if not matched:
            known = ", ".join(f"{label}@{step}" if step is not None else str(label) for label, step in by_key)
            raise InputError(
                f"{baseline.where}: the baseline trajectory shares no checkpoint label (and step) with this run "
                f"(baseline: {known}); pass the baseline of the same checkpoints"
            )
        return {index: compare(records[index], other, tolerance) for index, other in matched.items()}
    if which == "all":  # a single report: held against the last checkpoint
        chosen = [len(records) - 1]
    return {
        index: compare(records[index], baseline_record(reference, records[index], which), tolerance)
        for index in chosen
    }


@overload
def gate(results: Report, rules: Sequence[Rule | str] = (), baseline: Baseline | Path | str | None = None,
         tolerance: Tolerance = 0.0, which: Which | str = "last") -> Report: ...  # fmt: skip
@overload
def gate(results: Trajectory, rules: Sequence[Rule | str] = (), baseline: Baseline | Path | str | None = None,
         tolerance: Tolerance = 0.0, which: Which | str = "last") -> Trajectory: ...  # fmt: skip
def gate(
    results: Report | Trajectory,
    rules: Sequence[Rule | str] = (),
    baseline: Baseline | Path | str | None = None,
    tolerance: Tolerance = 0.0,
    which: Which | str = "last",
) -> Report | Trajectory:
    """``results`` with the checks of ``rules`` and ``baseline`` on the records ``which`` chooses: new
    objects, the given ones unchanged. A single report is gated as a trajectory of one and returned as a
    report. Rules may be given as text (``"nc1<=0.5"``), a baseline as the path of a ``--json`` file.

    Raises InputError for an unknown rule metric or gate, ``best`` without accuracies, an unreadable or
    foreign baseline, one of another class count, or a baseline comparison that checks nothing.
    """
    parsed = parse_rules(rules)
    loaded = load_baseline(baseline) if isinstance(baseline, (str, Path)) else baseline
    trajectory = Trajectory.of(results)
    records = trajectory.records
    chosen = gated_indices(records, which)
    checks = {index: evaluate_rules(records[index].gateable(), parsed) for index in chosen}
    if loaded is not None and records:
        compared = _baseline_checks(records, chosen, loaded, tolerance, which)
        if not any(compared.values()):
            raise InputError(
                f"{loaded.where}: shares no metric value with this run (none of its metrics is a number that "
                "this run measures against an NC target): a comparison would check nothing"
            )
        for index, found in compared.items():
            checks[index] = [*checks.get(index, []), *found]
    gated = tuple(
        record.changed(checks=tuple(checks.get(index, ())), gated=index in checks)
        for index, record in enumerate(records)
    )
    if isinstance(results, Report):
        return gated[0].changed(gated=None)
    return replace(trajectory, records=gated, gate=which)
