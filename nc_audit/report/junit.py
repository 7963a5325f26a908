"""JUnit XML of the checks, so that CI systems show each rule as a test with a history.

Layout (the subset of the Jenkins/Ant JUnit schema that CI report actions read; tests/report/junit.xsd
validates it)::

    <testsuites name="nc-audit" tests failures errors time>
      <testsuite name="nc-audit: epoch_0750.pt" tests failures errors skipped time>   one per report
        <properties>  checkpoint, label, step, and per check: value, threshold / baseline numbers
        <testcase classname="nc-audit.epoch_0750.pt" name="nc1 <= 0.5" time="0">
          <failure type="threshold" message="nc1 = 0.38, required <= 0.2">   when it failed
          <system-out>nc1 = 0.38: passes nc1 <= 0.5</system-out>           when it passed

Test names never contain measured values (``nc1 <= 0.5``, ``baseline nc1``), so a CI system sees the
same tests in every run and can track them. A single report (``measure``) gives one suite; a trajectory
(``track``) one suite per checkpoint, in order. A trajectory gated on one checkpoint (``--gate last`` or
``best``) files its test cases under ``nc-audit.last`` / ``nc-audit.best``, so the cases keep their
identity when the run gains checkpoints; the suite's properties say which checkpoint it was.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nc_audit.core.formats import TRAJECTORY_SCHEMA
from nc_audit.report.checks import check_message, check_name, number_text
from nc_audit.report.escape import xml_text

SUITE_NAME = "nc-audit"
#: Characters XML 1.0 cannot hold at all (a file name may contain them): shown as \xNN instead.


def xml_safe(text: Any) -> str:
    """``text`` as a string XML 1.0 can carry, every control character shown as an escape (report/escape.py:
    also the ones XML allows, such as a newline that could forge a line in a CI log)."""
    return xml_text(text)


def _records(reports: Iterable[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], str | None]]:
    """Every report record with the gate mode of its trajectory (None for single reports and ``all``)."""
    records: list[tuple[Mapping[str, Any], str | None]] = []
    for report in reports:
        if report.get("schema") == TRAJECTORY_SCHEMA:
            mode = report.get("gate")
            mode = str(mode) if mode in ("last", "best") else None
            records.extend((record, mode) for record in report.get("records") or [])
        else:
            records.append((report, None))
    return records


def _label(report: Mapping[str, Any], index: int) -> str:
    """The checkpoint's label, else its path, else its position."""
    checkpoint = report.get("checkpoint") or {}
    label = report.get("label")
    if label is None and report.get("step") is not None and not checkpoint.get("path"):
        label = f"step {report['step']}"
    return str(label or checkpoint.get("path") or f"report{index}")


def _check_properties(check: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The numbers of one check as (name, value) properties, named after the check."""
    name = check_name(check)
    fields = ("value", "threshold", "baseline", "distance", "baseline_distance", "tolerance", "target")
    pairs = [(f"{name}: {field}", number_text(check[field])) for field in fields if field in check]
    pairs.append((f"{name}: passed", "true" if check.get("passed") else "false"))
    return pairs


def _suite(record: Mapping[str, Any], label: str, classname: str) -> tuple[ET.Element, int, int]:
    """One <testsuite> for one report: its properties, then one <testcase> per check."""
    suite = ET.Element("testsuite", name=xml_safe(f"{SUITE_NAME}: {label}"))
    checks = list(record.get("checks") or [])
    checkpoint = record.get("checkpoint") or {}
    properties = [("label", label)]
    if checkpoint.get("path"):
        properties.append(("checkpoint", str(checkpoint["path"])))
    if record.get("step") is not None:
        properties.append(("step", str(record["step"])))
    if "gated" in record:
        properties.append(("gated", "true" if record["gated"] else "false"))
    for check in checks:
        properties.extend(_check_properties(check))
    holder = ET.SubElement(suite, "properties")
    for name, value in properties:
        ET.SubElement(holder, "property", name=xml_safe(name), value=xml_safe(value))
    failures = 0
    for check in checks:
        name = xml_safe(check_name(check))
        case = ET.SubElement(suite, "testcase", classname=xml_safe(classname), name=name, time="0")
        message = xml_safe(check_message(check))
        if check.get("passed"):
            ET.SubElement(case, "system-out").text = message
        else:
            failures += 1
            kind = "baseline" if "baseline" in check else "threshold"
            failure = ET.SubElement(case, "failure", message=message, type=f"{SUITE_NAME}.{kind}")
            failure.text = message
    for key, count in (("tests", len(checks)), ("failures", failures), ("errors", 0), ("skipped", 0)):
        suite.set(key, str(count))
    suite.set("time", "0")
    return suite, len(checks), failures


def render_junit(reports: Sequence[Mapping[str, Any]]) -> str:
    """JUnit XML of every check in ``reports`` (single reports and/or trajectories); see the module doc.

    ``classname`` is ``nc-audit.<label>``: the checkpoint's label (track: its file name; a monitor run's
    records sharing one label add ``@step<N>``), else its path; ``name`` is the check's stable name.
    """
    root = ET.Element("testsuites", name=SUITE_NAME)
    records = _records(reports)
    labels = [_label(record, index) for index, (record, _) in enumerate(records)]
    shared = {label for label in labels if labels.count(label) > 1}
    tests = failures = 0
    for (record, mode), label in zip(records, labels, strict=True):
        if label in shared and record.get("step") is not None:  # a monitor run: one label, many steps
            label = f"{label}@step{record['step']}"
        classname = f"{SUITE_NAME}.{mode or label}"
        suite, count, failed = _suite(record, label, classname)
        root.append(suite)
        tests, failures = tests + count, failures + failed
    root.set("tests", str(tests))
    root.set("failures", str(failures))
    root.set("errors", "0")
    root.set("time", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
