"""The report object (schema ``nc-audit-report/1``, docs/DESIGN.md) and its plain-data form."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from nc_audit.core.formats import REPORT_SCHEMA, TRAJECTORY_SCHEMA
from nc_audit.core.version import __version__
from nc_audit.report.ranges import check_ranges


@dataclass
class Report:
    """Everything one measurement says: sources, conventions, metrics beside their NC targets, checks."""

    checkpoint: dict[str, Any]
    features: dict[str, Any]
    conventions: dict[str, Any]
    metrics: dict[str, float | None]
    targets: dict[str, float | None]
    notes: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    step: int | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        """Every metric inside its mathematical range, or null with a note (report/ranges.py)."""
        slack = {key: float(value) for key, value in self.details.get("sample_level", {}).get("interval_95", {}).items()
                 if isinstance(value, (int, float))}  # fmt: skip
        self.metrics, notes = check_ranges(
            self.metrics, self.features.get("num_classes"), self.features.get("num_samples"), slack
        )
        self.notes = [*self.notes, *notes]

    @property
    def passed(self) -> bool:
        """True when every check passed (and vacuously when there are none)."""
        return all(check.get("passed", False) for check in self.checks)

    @property
    def num_classes(self) -> int:
        return int(self.features["num_classes"])

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form; non-finite numbers become null."""
        data: dict[str, Any] = {
            "schema": REPORT_SCHEMA,
            "nc_audit_version": __version__,
            "checkpoint": self.checkpoint,
            "features": self.features,
            "conventions": self.conventions,
            "metrics": {key: finite_or_none(value) for key, value in self.metrics.items()},
            "targets": {key: finite_or_none(value) for key, value in self.targets.items()},
            "notes": list(self.notes),
            "checks": list(self.checks),
            "passed": self.passed,
        }
        if self.details:
            data["details"] = self.details
        if self.label is not None or self.step is not None:
            data["step"] = self.step
            data["label"] = self.label
        return data


def record_label(record: dict[str, Any], index: int | None = None) -> str:
    """What a person calls a report record: its label, else ``step N``, else its checkpoint's file name,
    else its position — never the string "None" (a monitor record may have no label)."""
    label = record.get("label")
    if label is not None and str(label) != "":
        return str(label)
    if record.get("step") is not None:
        return f"step {record['step']}"
    path = (record.get("checkpoint") or {}).get("path")
    if path:
        return str(path)
    return f"record {index}" if index is not None else "—"


def finite_or_none(value: float | None) -> float | None:
    """A float, or None when it is None, NaN or infinite (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def trajectory_dict(reports: list[Report]) -> dict[str, Any]:
    """A trajectory report: one record per checkpoint, in order."""
    return {
        "schema": TRAJECTORY_SCHEMA,
        "nc_audit_version": __version__,
        "records": [report.to_dict() for report in reports],
        "passed": all(report.passed for report in reports),
    }
