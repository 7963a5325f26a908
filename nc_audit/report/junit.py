"""JUnit XML of the checks, so that CI systems show each rule as a test (one per rule and checkpoint)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nc_audit.core.formats import TRAJECTORY_SCHEMA

SUITE_NAME = "nc-audit"


def _records(reports: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Single reports as given; a trajectory contributes its records, in order."""
    records: list[Mapping[str, Any]] = []
    for report in reports:
        if report.get("schema") == TRAJECTORY_SCHEMA:
            records.extend(report.get("records") or [])
        else:
            records.append(report)
    return records


def _label(report: Mapping[str, Any], index: int) -> str:
    """The checkpoint's label, else its path, else its position."""
    checkpoint = report.get("checkpoint") or {}
    return str(report.get("label") or checkpoint.get("path") or f"report{index}")


def _value_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return "undefined"
    return format(float(value), ".6g")


def _failure_message(check: Mapping[str, Any]) -> str:
    """One line: the rule, the value, and the baseline or the reason when there is one."""
    parts = [f"{check.get('rule', '')}: value {_value_text(check.get('value'))}"]
    if "baseline" in check:
        parts.append(f"baseline {_value_text(check['baseline'])}")
    if check.get("reason"):
        parts.append(str(check["reason"]))
    return ", ".join(parts)


def render_junit(reports: Sequence[Mapping[str, Any]]) -> str:
    """JUnit XML: one ``<testsuite name="nc-audit">`` with a ``<testcase>`` per check and checkpoint.

    ``classname`` is ``nc-audit.<checkpoint label or path>``, ``name`` the rule; a failed check holds a
    ``<failure message="...">`` with its value. Reports may be single reports or trajectories. A check
    carrying a ``label`` (a baseline comparison of trajectories) is filed under that label.
    """
    suite = ET.Element("testsuite", name=SUITE_NAME)
    tests = failures = 0
    records = _records(reports)
    labels = [_label(report, index) for index, report in enumerate(records)]
    shared = {label for label in labels if labels.count(label) > 1}
    for report, label in zip(records, labels, strict=True):
        if label in shared and report.get("step") is not None:  # a monitor run: one label, many steps
            label = f"{label}@step{report['step']}"
        for check in report.get("checks") or []:
            case_label = str(check.get("label") or label)
            case = ET.SubElement(
                suite, "testcase", classname=f"{SUITE_NAME}.{case_label}", name=str(check.get("rule", ""))
            )
            case.set("time", "0")
            tests += 1
            if not check.get("passed"):
                failures += 1
                message = _failure_message(check)
                failure = ET.SubElement(case, "failure", message=message, type="nc-audit.check")
                failure.text = message
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", "0")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
