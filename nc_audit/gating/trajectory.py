"""Gating a trajectory: which checkpoints the rules and the baseline hold, and their checks.

``track --gate MODE`` chooses the checkpoints that are gated:

- ``last`` (the default, for CI): only the last checkpoint in training order — the model the job ships.
  An untrained epoch 0 at the start of the run never fails the job.
- ``best``: only the checkpoint with the highest classifier accuracy on the measured split (the
  ``accuracy`` a report holds under ``details``, or a monitor record's ``accuracy`` metric); ties go to
  the later checkpoint. A trajectory without accuracies cannot be gated this way (InputError).
- ``all``: every checkpoint, each against its own rules and its baseline record.

The other checkpoints are still measured, shown and written; they get no checks (``gated: false``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.core.formats import TRAJECTORY_SCHEMA
from nc_audit.gating.rules import Rule, compare_to_baseline, evaluate_rules, gateable, record_key

GATE_MODES = ("last", "best", "all")


def accuracy_of(record: Mapping[str, Any]) -> float | None:
    """The record's classifier accuracy on the measured split, or None when it has none."""
    value = gateable(record).get("accuracy")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def gated_indices(records: Sequence[Mapping[str, Any]], mode: str) -> list[int]:
    """Positions of the records that ``mode`` gates (see the module docstring)."""
    if mode not in GATE_MODES:
        raise InputError(f"unknown gate {mode!r}; expected one of {', '.join(GATE_MODES)}")
    if not records:
        return []
    if mode == "all":
        return list(range(len(records)))
    if mode == "last":
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


def _baseline_record(baseline: Mapping[str, Any], record: Mapping[str, Any], mode: str) -> Mapping[str, Any]:
    """The baseline record a gated record is compared with: the same checkpoint (label and step) when
    the baseline trajectory has it, else the one the same gate picks there; a single report as it is."""
    if baseline.get("schema") != TRAJECTORY_SCHEMA:
        return baseline
    records = baseline.get("records") or []
    same = [other for other in records if record_key(other) == record_key(record)]
    if same:
        return same[0]
    return records[gated_indices(records, mode)[0]]


def gate_trajectory(
    trajectory: dict[str, Any],
    rules: Sequence[Rule],
    baseline: Mapping[str, Any] | None,
    tolerance: float | Mapping[str, float],
    mode: str = "last",
) -> None:
    """Set ``checks``, ``gated`` and ``passed`` on every record and ``gate``/``passed`` on the trajectory.

    ``mode`` ``all`` compares each record with the baseline trajectory's record of the same label and
    step (a single-report baseline is compared with the last record); ``last``/``best`` compare the
    gated record alone (see :func:`_baseline_record`).
    """
    records = trajectory["records"]
    chosen = set(gated_indices(records, mode))
    for index, record in enumerate(records):
        record["gated"] = index in chosen
        record["checks"] = evaluate_rules(gateable(record), rules) if index in chosen else []
    if baseline is not None and records:
        if mode == "all":
            by_key = {record_key(record): record for record in records}
            for check in compare_to_baseline(trajectory, baseline, tolerance):
                key = (check.pop("label", None), check.pop("step", None))
                by_key.get(key, records[-1])["checks"].append(check)
        else:
            for index in sorted(chosen):
                reference = _baseline_record(baseline, records[index], mode)
                records[index]["checks"] += compare_to_baseline(records[index], reference, tolerance)
    for record in records:
        record["passed"] = all(check["passed"] for check in record["checks"])
    trajectory["gate"] = mode
    trajectory["passed"] = all(record["passed"] for record in records)
