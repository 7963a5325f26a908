"""The report of one checkpoint (schema ``nc-audit-report/1``, docs/DESIGN.md) and its conventions.

A :class:`Report` is frozen: gating gives a new one (:meth:`Report.changed`). Built by the measurement,
it checks every metric against its mathematical range (report/ranges.py); read back from a JSON file
(:meth:`Report.from_dict`: baselines, a monitor's .jsonl) it holds what the file says, checked for types.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import InitVar, dataclass, field, replace
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.core.formats import REPORT_SCHEMA
from nc_audit.core.version import __version__
from nc_audit.report.model.check import Check, json_number
from nc_audit.report.model.layers import LayerResult
from nc_audit.report.ranges import check_ranges

#: A JSON value (what a convention, a checkpoint field or a detail holds).
JSON = Any


@dataclass(frozen=True, eq=False)
class Conventions(Mapping[str, JSON]):
    """How the numbers were computed (global mean, covariance weighting, entropy base, ...), by name, in
    the order the report shows them; read like a mapping."""

    items_: tuple[tuple[str, JSON], ...] = ()

    @classmethod
    def of(cls, values: Mapping[str, JSON] | Conventions) -> Conventions:
        return (
            values if isinstance(values, Conventions) else cls(tuple((str(k), v) for k, v in values.items()))
        )

    def __getitem__(self, key: str) -> JSON:
        for name, value in self.items_:
            if name == key:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self.items_)

    def __len__(self) -> int:
        return len(self.items_)

    def to_dict(self) -> dict[str, JSON]:
        return dict(self.items_)


def finite_or_none(value: float | None) -> float | None:
    """A float, or None when it is None, NaN or infinite (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Report:
    """Everything one measurement says: sources, conventions, metrics beside their NC targets, checks.

    ``step``/``label`` name a trajectory's record; ``gated`` says whether the gate held this record
    (None: not gated as part of a trajectory, e.g. ``measure``). ``check_ranges=False`` keeps the metrics
    as given (a report read back from a file).
    """

    checkpoint: dict[str, JSON]
    features: dict[str, JSON]
    conventions: Mapping[str, JSON]  # a Conventions once built
    metrics: dict[str, float | None]
    targets: dict[str, float | None]
    notes: Sequence[str] = ()  # a tuple once built
    checks: Sequence[Check] = ()  # a tuple once built
    details: dict[str, JSON] = field(default_factory=dict)
    step: int | None = None
    label: str | None = None
    gated: bool | None = None
    layers: Sequence[
        LayerResult
    ] = ()  # collapse across depth (--layers), in forward order; a tuple once built
    check_ranges: InitVar[bool] = True

    def __post_init__(self, check_ranges_: bool) -> None:
        """Every metric inside its mathematical range, or null with a note (report/ranges.py)."""
        object.__setattr__(self, "conventions", Conventions.of(self.conventions))
        object.__setattr__(self, "notes", tuple(self.notes))
        object.__setattr__(self, "checks", tuple(self.checks))
        object.__setattr__(self, "layers", tuple(self.layers))
        if not check_ranges_:
            return
        level = self.details.get("sample_level")
        interval = level.get("interval_95", {}) if isinstance(level, Mapping) else {}
        slack = {key: float(value) for key, value in interval.items() if isinstance(value, (int, float))}
        metrics, notes = check_ranges(
            self.metrics, self.features.get("num_classes"), self.features.get("num_samples"), slack
        )
        object.__setattr__(self, "metrics", metrics)
        object.__setattr__(self, "notes", (*self.notes, *notes))

    def changed(self, **changes: Any) -> Report:
        """A copy with ``changes`` (``dataclasses.replace`` without checking the ranges a second time)."""
        return replace(self, check_ranges=False, **changes)

    @property
    def passed(self) -> bool:
        """True when every check passed (and vacuously when there are none): the one verdict of a report."""
        return all(check.passed for check in self.checks)

    @property
    def num_classes(self) -> int:
        return int(self.features["num_classes"])

    def gateable(self) -> dict[str, float | None]:
        """The values rules may name: the metrics, plus the classifier accuracy kept under details."""
        extra = {"accuracy": self.details["accuracy"]} if "accuracy" in self.details else {}
        return {**extra, **self.metrics}

    def to_dict(self) -> dict[str, JSON]:
        """The JSON-able form; non-finite numbers become null."""
        data: dict[str, JSON] = {
            "schema": REPORT_SCHEMA,
            "nc_audit_version": __version__,
            "checkpoint": self.checkpoint,
            "features": self.features,
            "conventions": dict(self.conventions),
            "metrics": {key: finite_or_none(value) for key, value in self.metrics.items()},
            "targets": {key: finite_or_none(value) for key, value in self.targets.items()},
            "notes": list(self.notes),
            "checks": [check.to_dict() for check in self.checks],
            "passed": self.passed,
        }
        if self.details:
            data["details"] = self.details
        if self.layers:
            data["layers"] = [layer.to_dict() for layer in self.layers]
        if self.label is not None or self.step is not None:
            data["step"] = self.step
            data["label"] = self.label
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Report:
        """A report read from a JSON file (untrusted, already bounded by the JSON reader): every part
        checked for its type, InputError naming ``where`` otherwise; metrics that are not finite numbers
        are kept as undefined (None)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("metrics"), Mapping):
            raise InputError(f"{where} has no 'metrics' object; pass a report written by nc-audit --json")
        parts = {
            key: _mapping(data, key, where) for key in ("checkpoint", "features", "conventions", "targets")
        }
        notes, checks = data.get("notes") or [], data.get("checks") or []
        if not isinstance(notes, list) or not all(isinstance(note, str) for note in notes):
            raise InputError(f"{where}: 'notes' must be a list of strings")
        if not isinstance(checks, list):
            raise InputError(f"{where}: 'checks' must be a list")
        step, label = data.get("step"), data.get("label")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            raise InputError(f"{where}: 'step' must be an integer or null")
        if label is not None and not isinstance(label, str):
            raise InputError(f"{where}: 'label' must be a string or null")
        gated = data.get("gated")
        layers = data.get("layers") or []
        if not isinstance(layers, list):
            raise InputError(f"{where}: 'layers' must be a list")
        return cls(
            checkpoint=dict(parts["checkpoint"]),
            features=dict(parts["features"]),
            conventions=Conventions.of(parts["conventions"]),
            metrics={str(key): json_number(value) for key, value in data["metrics"].items()},
            targets={str(key): json_number(value) for key, value in parts["targets"].items()},
            notes=tuple(notes),
            checks=tuple(Check.from_dict(check, f"{where}: check {i}") for i, check in enumerate(checks)),
            details=dict(_mapping(data, "details", where)),
            step=step,
            label=label,
            gated=gated if isinstance(gated, bool) else None,
            layers=tuple(
                LayerResult.from_dict(layer, f"{where}: layer {i}") for i, layer in enumerate(layers)
            ),
            check_ranges=False,
        )


def _mapping(data: Mapping[str, JSON], key: str, where: str) -> Mapping[str, JSON]:
    """``data[key]`` when it is a JSON object, {} when absent or null; InputError otherwise."""
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(f"{where}: {key!r} must be a JSON object")
    return value
