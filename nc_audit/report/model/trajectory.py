"""A trajectory: the reports of a training run's checkpoints, in order (schema ``nc-audit-trajectory/1``).

A single report is a trajectory of one for every renderer and for the gate. A trajectory reads like a
sequence of its reports (``trajectory[0].metrics``, ``for report in trajectory``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

from nc_audit.core.errors import InputError
from nc_audit.core.formats import REPORT_SCHEMA, TRAJECTORY_SCHEMA
from nc_audit.core.version import __version__
from nc_audit.report.model.report import JSON, Report

#: A trajectory record is a report that names its checkpoint (step, label) and whether it was gated.
Record = Report


@dataclass(frozen=True)
class Trajectory(Sequence[Report]):
    """Reports in training order; ``gate`` is the gate mode (last | best | all) once gated, else None.
    ``single`` marks one report on its own (``measure``, a report baseline), serialised as a report.
    ``layers_metric`` is the layer metric the layer × checkpoint tables show (``track --layers-metric``;
    not serialised: the JSON holds every metric)."""

    records: tuple[Report, ...] = ()
    gate: str | None = None
    single: bool = False
    layers_metric: str = "nc1"

    @classmethod
    def of(cls, reports: Report | Sequence[Report]) -> Trajectory:
        """A trajectory of ``reports``, or of one report alone."""
        if isinstance(reports, Trajectory):
            return reports
        if isinstance(reports, Report):
            return cls((reports,), single=True)
        return cls(tuple(reports))

    @overload
    def __getitem__(self, index: int) -> Report: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Report]: ...
    def __getitem__(self, index: int | slice) -> Report | Sequence[Report]:
        return self.records[index]

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Report]:
        return iter(self.records)

    @property
    def passed(self) -> bool:
        """True when every record passed: the one verdict of a run."""
        return all(record.passed for record in self.records)

    @property
    def failed(self) -> int:
        """How many checks failed over every record."""
        return sum(not check.passed for record in self.records for check in record.checks)

    def to_dict(self) -> dict[str, JSON]:
        """The JSON form: a report's when ``single``, else a trajectory's (with ``gate`` once gated)."""
        if self.single and len(self.records) == 1:
            return self.records[0].to_dict()
        data: dict[str, JSON] = {
            "schema": TRAJECTORY_SCHEMA,
            "nc_audit_version": __version__,
            "records": [self._record_dict(record) for record in self.records],
            "passed": self.passed,
        }
        if self.gate is not None:
            data["gate"] = self.gate
        return data

    def _record_dict(self, record: Report) -> dict[str, JSON]:
        """A record's JSON form; ``gated`` (after every other key) once the trajectory is gated."""
        data = record.to_dict()
        if self.gate is not None and record.gated is not None:
            data["gated"] = record.gated
        return data

    @classmethod
    def from_records(cls, records: Sequence[Any], where: str) -> Trajectory:
        """A trajectory of report records read from a file (a monitor's .jsonl), each checked for types."""
        return cls(
            tuple(Report.from_dict(record, f"{where}: record {i}") for i, record in enumerate(records))
        )

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Trajectory:
        """A report or a trajectory read from a JSON file (untrusted; see :meth:`Report.from_dict`)."""
        if not isinstance(data, Mapping):
            raise InputError(
                f"{where}: expected a JSON object with schema {REPORT_SCHEMA!r} or {TRAJECTORY_SCHEMA!r}"
            )
        schema = data.get("schema")
        if schema == REPORT_SCHEMA:
            return cls((Report.from_dict(data, where),), single=True)
        if schema != TRAJECTORY_SCHEMA:
            raise InputError(
                f"{where}: schema is {schema!r}, expected {REPORT_SCHEMA!r} or {TRAJECTORY_SCHEMA!r}; "
                "pass a report written by nc-audit --json"
            )
        records = data.get("records")
        if not isinstance(records, list) or not records:
            raise InputError(f"{where}: a trajectory baseline needs a non-empty 'records' list")
        return cls.from_records(records, where)


def trajectory_dict(reports: Sequence[Report]) -> dict[str, JSON]:
    """A trajectory report: one record per checkpoint, in order."""
    return Trajectory(tuple(reports)).to_dict()


def record_label(record: Report | Mapping[str, JSON], index: int | None = None) -> str:
    """What a person calls a report record: its label, else its checkpoint's path, else ``step N``, else
    its position — never the string "None" (a monitor record may have no label). The one label of
    a record in every format (console, Markdown, HTML, JUnit, plots, GitHub groups)."""
    label: object
    step: object
    checkpoint: object
    if isinstance(record, Report):
        label, step, checkpoint = record.label, record.step, record.checkpoint
    else:
        label, step, checkpoint = record.get("label"), record.get("step"), record.get("checkpoint")
    if label is not None and str(label) != "":
        return label if isinstance(label, str) else str(label)  # an escaped label stays marked escaped
    path = checkpoint.get("path") if isinstance(checkpoint, Mapping) else None
    if path:
        return path if isinstance(path, str) else str(path)
    if step is not None:
        return f"step {step}"
    return f"record {index}" if index is not None else "—"
