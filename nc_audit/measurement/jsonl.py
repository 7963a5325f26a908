"""Reading a monitor's ``.jsonl`` trajectory (written by :mod:`nc_audit.measurement.monitor`), bounded and
checked, without torch (``track run.jsonl`` reads it before loading PyTorch)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.core.formats import REPORT_SCHEMA
from nc_audit.io.guards.files import MAX_JSON_BYTES, JSONSyntaxError, parse_json, read_capped


class TruncatedLineWarning(UserWarning):
    """The last line of a .jsonl trajectory is incomplete (a write was cut short) and was skipped."""


def _check_record(record: dict[str, Any], where: str) -> None:
    """A record's metrics must be numbers or null: they are gated, printed and plotted as such."""
    metrics = record.get("metrics")
    if not isinstance(metrics, dict):
        raise InputError(f"{where}: the record has no 'metrics' object")
    for key, value in metrics.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise InputError(f"{where}: metric {key!r} is not a number or null")


def read_trajectory_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """The records of a .jsonl trajectory, in file order.

    A final line that does not parse (a write cut short by a crash) is skipped with a
    TruncatedLineWarning; a malformed line anywhere else, or a line that is not a report record,
    raises InputError naming the line.
    """
    path = Path(path)
    lines = read_capped(path, MAX_JSON_BYTES, "trajectory").split(b"\n")  # a regular file, bounded
    numbered = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    records = []
    for index, (number, line) in enumerate(numbered):
        try:
            record = parse_json(line, f"{path}: line {number}")  # bounded depth and digits
        except JSONSyntaxError as error:
            if index == len(numbered) - 1:
                warnings.warn(
                    f"{path}: line {number} is incomplete (an interrupted write?) and was skipped",
                    TruncatedLineWarning,
                    stacklevel=2,
                )
                break
            raise InputError(f"{path}: line {number} is not valid JSON ({error.msg})") from None
        if not isinstance(record, dict) or record.get("schema") != REPORT_SCHEMA:
            raise InputError(f"{path}: line {number} is not a report record (schema {REPORT_SCHEMA})")
        _check_record(record, f"{path}: line {number}")
        records.append(record)
    return records
