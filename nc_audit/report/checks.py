"""How a check is named and described, the same in JUnit, HTML and logs.

A check's name never holds a measured value (``nc1 <= 0.5``, ``baseline nc1``), so CI test histories
follow it from run to run; its message holds the value and what it was held to. The kind of a check is
the one it states (:class:`nc_audit.report.model.Check`), never guessed from its fields here.
"""

from __future__ import annotations

from nc_audit.report.formats.view import raw_text
from nc_audit.report.model import Check
from nc_audit.report.numbers import check_number

#: The numbers of a check, by kind, in the order test reports list them as properties.
CHECK_FIELDS = {
    "threshold": ("value", "threshold"),
    "baseline": ("value", "baseline", "distance", "baseline_distance", "tolerance", "target"),
    "undefined": ("value", "baseline"),
}


def check_name(check: Check) -> str:
    """The stable name of a check: ``nc1 <= 0.5`` or ``baseline nc1`` (never a measured value)."""
    if check.name:
        return check.name
    return check.rule.split(":", 1)[0] if check.rule.startswith("baseline ") else check.rule


def check_numbers(check: Check) -> list[tuple[str, float | None]]:
    """The numbers a check holds, by field name (the JUnit properties)."""
    return [(name, getattr(check, name)) for name in CHECK_FIELDS[check.kind]]


def check_message(check: Check) -> str:
    """One line with the value and what it was held to (threshold, or baseline and tolerance), composed
    from the raw texts of the check (an escaped view's strings included), for its format to escape once."""
    metric = raw_text(check.metric or check_name(check))
    value = check_number(check.value)
    if check.reason == "not measured":
        shown = f"{metric} was not measured"
    elif check.reason == "undefined" or value == "undefined":
        shown = f"{metric} is undefined"
    else:
        shown = f"{metric} = {value}"
    if check.kind == "threshold":
        verdict = "passes" if check.passed else "required"
        return f"{shown}, {verdict} {raw_text(check.op)} {check_number(check.threshold)}"
    if check.kind == "baseline":
        moved = f"|Δ to NC| {check_number(check.baseline_distance)} → {check_number(check.distance)}"
        return (
            f"{shown}, baseline {check_number(check.baseline)}; {moved} "
            f"(tolerance {check_number(check.tolerance)}, target {check_number(check.target)})"
        )
    extra = f", baseline {check_number(check.baseline)}" if check.baseline is not None else ""
    return f"{shown}{extra} ({raw_text(check.rule)})"
