"""A check: one rule or one baseline comparison held against one measured value, and its verdict.

Its ``kind`` is explicit: ``threshold`` (``nc1 <= 0.5``), ``baseline`` (a metric may not move away from its
NC target by more than a tolerance since a baseline report), or ``undefined`` (a check read from a
hand-written JSON file that holds neither a threshold nor a baseline comparison). The JSON form (schema
``nc-audit-report/1``) keeps the key order of every earlier release and holds no ``kind``: it is read
back by :meth:`Check.from_dict`, the one place that tells the kinds apart by their fields.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from nc_audit.core.errors import InputError

CheckKind = Literal["threshold", "baseline", "undefined"]
#: The numbers a baseline check holds, in their JSON order.
BASELINE_FIELDS = ("target", "distance", "baseline_distance", "tolerance")


def json_number(value: Any) -> float | None:
    """A finite float, or None for null, NaN, infinities, booleans, non-numbers and integers past float
    range (a metric value JSON can carry)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class Check:
    """One check and its verdict. ``name`` never holds a measured value (``nc1 <= 0.5``, ``baseline nc1``),
    so CI test histories follow it; ``rule`` may quote the values; ``reason`` says why a check failed
    without a number (``undefined``, ``not measured``)."""

    kind: CheckKind
    rule: str
    name: str
    metric: str
    value: float | None
    passed: bool
    reason: str | None = None
    op: str | None = None
    threshold: float | None = None
    baseline: float | None = None
    target: float | None = None
    distance: float | None = None
    baseline_distance: float | None = None
    tolerance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, keys in the order of every earlier release."""
        data: dict[str, Any] = {
            "rule": self.rule,
            "name": self.name,
            "metric": self.metric,
            "value": self.value,
        }
        if self.kind == "threshold":
            data.update(op=self.op, threshold=self.threshold, passed=self.passed)
        elif self.kind == "baseline":
            data.update(baseline=self.baseline, passed=self.passed)
            data.update((key, getattr(self, key)) for key in BASELINE_FIELDS)
        else:
            if self.baseline is not None:
                data["baseline"] = self.baseline
            data["passed"] = self.passed
        if self.reason is not None:
            data["reason"] = self.reason
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Check:
        """A check read from a JSON file (untrusted): its kind from its fields (``op`` and ``threshold``: a
        threshold; ``baseline_distance``: a baseline comparison; else undefined). InputError naming
        ``where`` for anything that is not a check."""
        if not isinstance(data, Mapping):
            raise InputError(f"{where}: a check must be a JSON object")
        texts = {key: data.get(key) for key in ("rule", "name", "metric", "reason", "op")}
        for key, text in texts.items():
            if text is not None and not isinstance(text, str):
                raise InputError(f"{where}: the check's {key!r} must be a string")
        if not isinstance(data.get("passed", False), bool):
            raise InputError(f"{where}: the check's 'passed' must be true or false")
        rule = texts["rule"] or ""
        kind: CheckKind = (
            "threshold" if "op" in data and "threshold" in data
            else "baseline" if "baseline_distance" in data
            else "undefined"
        )  # fmt: skip
        numbers = {key: json_number(data.get(key)) for key in ("threshold", "baseline", *BASELINE_FIELDS)}
        return cls(
            kind=kind,
            rule=rule,
            name=texts["name"] or rule,
            metric=texts["metric"] or "",
            value=json_number(data.get("value")),
            passed=bool(data.get("passed", False)),
            reason=texts["reason"],
            op=texts["op"],
            **numbers,
        )
