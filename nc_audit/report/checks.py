"""How a check is named and described, the same in JUnit, HTML and logs.

A check's name never holds a measured value (``nc1 <= 0.5``, ``baseline nc1``), so CI test histories
follow it from run to run; its message holds the value and what it was held to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nc_audit.report.numbers import as_number


def number_text(value: Any) -> str:
    """A number as a test report shows it (6 significant digits); ``undefined`` for null/NaN."""
    number = as_number(value)
    return "undefined" if number is None else format(number, ".6g")


def check_name(check: Mapping[str, Any]) -> str:
    """The stable name of a check: ``nc1 <= 0.5`` or ``baseline nc1`` (never a measured value)."""
    if check.get("name"):
        return str(check["name"])
    rule = str(check.get("rule", ""))
    return rule.split(":", 1)[0] if rule.startswith("baseline ") else rule


def check_message(check: Mapping[str, Any]) -> str:
    """One line with the value and what it was held to (threshold, or baseline and tolerance)."""
    metric = str(check.get("metric") or check_name(check))
    value = number_text(check.get("value"))
    if check.get("reason") == "not measured":
        shown = f"{metric} was not measured"
    elif check.get("reason") == "undefined" or value == "undefined":
        shown = f"{metric} is undefined"
    else:
        shown = f"{metric} = {value}"
    if "threshold" in check and "op" in check:
        verdict = "passes" if check.get("passed") else "required"
        return f"{shown}, {verdict} {check['op']} {number_text(check['threshold'])}"
    if "baseline_distance" in check:
        moved = f"|Δ to NC| {number_text(check['baseline_distance'])} → {number_text(check.get('distance'))}"
        return (
            f"{shown}, baseline {number_text(check.get('baseline'))}; {moved} "
            f"(tolerance {number_text(check.get('tolerance'))}, target {number_text(check.get('target'))})"
        )
    extra = f", baseline {number_text(check['baseline'])}" if "baseline" in check else ""
    return f"{shown}{extra} ({check.get('rule', '')})"
