"""Threshold rules (``nc1<=0.5``): parsed from text and held against a report's values as threshold checks
(:class:`nc_audit.report.model.Check`). Baselines are in :mod:`nc_audit.gating.baseline`; the one gate that
applies both is :func:`nc_audit.gating.gate.gate`.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from nc_audit.core.errors import InputError
from nc_audit.report.model import Check, json_number
from nc_audit.report.numbers import rule_number

#: Comparison operators a rule may use; two-character ones first so that "<=" is not read as "<".
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}

RULE_FORM = "METRIC OP VALUE, e.g. 'nc1<=0.5', 'mir >= 0.9' or 'hdr<0.1' (OP: <=, <, >=, >, ==, !=)"
_RULE_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")


@dataclass(frozen=True)
class Rule:
    """A threshold on one metric: ``metric op threshold`` must hold for the check to pass."""

    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {rule_number(self.threshold)}"

    def holds(self, value: float) -> bool:
        """Whether ``value`` satisfies the rule."""
        return OPERATORS[self.op](value, self.threshold)


def parse_rule(text: str, known_metrics: Iterable[str]) -> Rule:
    """Parse ``METRIC OP VALUE`` (spaces allowed) into a Rule; the metric must be one of ``known_metrics``.

    Raises InputError showing the expected form for malformed text, and listing the known metric keys
    (with the closest one suggested) for an unknown metric.
    """
    match = _RULE_RE.match(text)
    if match is None:
        raise InputError(f"cannot read the rule {text!r}: expected {RULE_FORM}")
    name, op, raw_value = match.groups()
    try:
        threshold = float(raw_value)
    except ValueError:
        raise InputError(
            f"cannot read the rule {text!r}: {raw_value!r} is not a number; expected {RULE_FORM}"
        ) from None
    if math.isnan(threshold):
        raise InputError(f"cannot read the rule {text!r}: the threshold is NaN; expected {RULE_FORM}")
    known = list(dict.fromkeys(known_metrics))
    metric = name if name in known else name.lower()
    if metric not in known:
        close = difflib.get_close_matches(metric, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InputError(
            f"unknown metric {name!r} in the rule {text!r}; {hint}known metrics: {', '.join(known)}"
        )
    return Rule(metric=metric, op=op, threshold=threshold)


def parse_rules(texts: Iterable[str | Rule]) -> list[Rule]:
    """Rules from their text (or as given), every metric one of the catalog's (metrics/catalog.py)."""
    from nc_audit.metrics.catalog import METRICS

    return [text if isinstance(text, Rule) else parse_rule(text, METRICS) for text in texts]


def evaluate_rules(values: Mapping[str, float | None], rules: Iterable[Rule]) -> list[Check]:
    """One threshold check per rule; an undefined (None/NaN) or missing value fails with a ``reason``."""
    checks: list[Check] = []
    for rule in rules:
        value = json_number(values.get(rule.metric))
        reason = None if value is not None else "undefined" if rule.metric in values else "not measured"
        passed = value is not None and bool(rule.holds(value))
        checks.append(
            Check(
                "threshold", str(rule), str(rule), rule.metric, value, passed, reason, rule.op, rule.threshold
            )
        )
    return checks
