"""Numbers as the reports print them: one module for every table, summary, check, rule and plot.

:func:`significant` is the one formatter; the named forms below are its presets (console, wide tables,
test reports, rule thresholds). Renderers of studies, pruning and demos use them too.

A value from a report may be a float, an int, None (undefined), NaN (from a hand-written file) or
anything else; :func:`as_number` turns it into a float or None, and the formatters print None as
``undefined``.
"""

from __future__ import annotations

import math
from typing import Any

#: How an undefined value (null in the JSON report) is printed.
UNDEFINED = "—"


def as_number(value: Any) -> float | None:
    """A float (infinite allowed), or None for null, NaN, booleans and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def significant(value: Any, digits: int, undefined: str = UNDEFINED) -> str:
    """``value`` with ``digits`` significant digits (``%g``: scientific outside 1e-4..10^digits); ``undefined``
    for null, NaN and non-numbers."""
    number = as_number(value)
    return undefined if number is None else f"{number:.{digits}g}"


def check_number(value: Any) -> str:
    """A number as a test report (JUnit, check messages) shows it: 6 significant digits, ``undefined``
    for null/NaN."""
    return significant(value, 6, "undefined")


def rule_number(value: float) -> str:
    """A rule's threshold as short text that still round-trips typical thresholds (0.5, 1e-05, 0.952351)."""
    return significant(value, 12, "nan")


def precise(value: Any, undefined: str = UNDEFINED) -> str:
    """The console's full-precision form: 6 significant digits, scientific outside 1e-4..1e6, 0 as "0"."""
    number = as_number(value)
    if number is None:
        return undefined
    if number == 0:
        return "0"
    return f"{number:.6g}" if 1e-4 <= abs(number) < 1e6 else f"{number:.3e}"


def short(value: Any, undefined: str = UNDEFINED) -> str:
    """Four significant digits, for wide tables (trajectories, Markdown summaries)."""
    return significant(value, 4, undefined)


def fixed(value: Any, undefined: str = UNDEFINED) -> str:
    """Four decimals, for values on one scale side by side (accuracies, before/after); non-numbers as text."""
    if isinstance(value, float) and not math.isnan(value):
        return f"{value:.4f}"
    return undefined if value is None or isinstance(value, float) else str(value)


def half_widths(report: Any) -> dict[str, float]:
    """The 95% half-widths of a report's estimated metrics (details.class_level.interval_95: MI and MIR
    on the SLQ route), by key; empty when every number is exact or the record is hand-written."""
    details = report.get("details") if isinstance(report, dict) else None
    level = details.get("class_level") if isinstance(details, dict) else None
    interval = level.get("interval_95") if isinstance(level, dict) else None
    if not isinstance(interval, dict):
        return {}
    return {str(key): float(value) for key, value in interval.items() if as_number(value) is not None}


def with_error(text: str, key: str, errors: dict[str, float], form: Any = short) -> str:
    """``text`` with `` ± half-width`` when ``key`` has an error bar."""
    return f"{text} ± {form(errors[key])}" if key in errors else text


# --- experiment output (studies, prune, demo): settings, timings, shares -----------------------------------
def general(value: Any, undefined: str = UNDEFINED) -> str:
    """The shortest form (``{:g}``) of a setting such as ε, λ, a sparsity or a learning rate; an int as is."""
    number = as_number(value)
    if number is None:
        return undefined
    return str(value) if isinstance(value, int) else f"{number:g}"


def decimals(value: Any, digits: int, undefined: str = UNDEFINED) -> str:
    """``digits`` decimals whatever the type (an int too: ``1.0000``); seconds (1), shares (3), metrics (4)."""
    number = as_number(value)
    return undefined if number is None else f"{number:.{digits}f}"
