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
from collections.abc import Sequence
from typing import Any

from nc_audit.report.checks import check_message, check_name, check_numbers
from nc_audit.report.escape import xml_text
from nc_audit.report.model import Check, Report, Trajectory, record_label
from nc_audit.report.numbers import check_number

SUITE_NAME = "nc-audit"


def xml_safe(text: Any) -> str:
    """``text`` as a string XML 1.0 can carry, every control character shown as an escape (report/escape.py:
    also the ones XML allows, such as a newline that could forge a line in a CI log)."""
    return xml_text(text)


def _records(runs: Sequence[Trajectory | Report]) -> list[tuple[Report, str | None, bool]]:
    """Every record with the gate mode of its trajectory (None for single reports and ``all``), and
    whether the trajectory was gated (its records then say whether each one was)."""
    records: list[tuple[Report, str | None, bool]] = []
    for run in runs:
        trajectory = Trajectory.of(run)
        gated = trajectory.gate is not None and not trajectory.single
        mode = trajectory.gate if gated and trajectory.gate in ("last", "best") else None
        records.extend((record, mode, gated) for record in trajectory)
    return records


def _check_properties(check: Check) -> list[tuple[str, str]]:
    """The numbers of one check as (name, value) properties, named after the check."""
    name = check_name(check)
    pairs = [(f"{name}: {field}", check_number(value)) for field, value in check_numbers(check)]
    pairs.append((f"{name}: passed", "true" if check.passed else "false"))
    return pairs


def _suite(record: Report, label: str, classname: str, gated: bool) -> tuple[ET.Element, int, int]:
    """One <testsuite> for one report: its properties, then one <testcase> per check."""
    suite = ET.Element("testsuite", name=xml_safe(f"{SUITE_NAME}: {label}"))
    properties = [("label", label)]
    if record.checkpoint.get("path"):
        properties.append(("checkpoint", str(record.checkpoint["path"])))
    if record.step is not None:
        properties.append(("step", str(record.step)))
    if gated and record.gated is not None:
        properties.append(("gated", "true" if record.gated else "false"))
    for check in record.checks:
        properties.extend(_check_properties(check))
    holder = ET.SubElement(suite, "properties")
    for name, value in properties:
        ET.SubElement(holder, "property", name=xml_safe(name), value=xml_safe(value))
    for check in record.checks:
        case = ET.SubElement(
            suite, "testcase", classname=xml_safe(classname), name=xml_safe(check_name(check)), time="0"
        )
        message = xml_safe(check_message(check))
        if check.passed:
            ET.SubElement(case, "system-out").text = message
        else:
            failure = ET.SubElement(case, "failure", message=message, type=f"{SUITE_NAME}.{check.kind}")
            failure.text = message
    failures = sum(not check.passed for check in record.checks)
    for key, count in (("tests", len(record.checks)), ("failures", failures), ("errors", 0), ("skipped", 0)):
        suite.set(key, str(count))
    suite.set("time", "0")
    return suite, len(record.checks), failures


def render_junit(runs: Sequence[Trajectory | Report]) -> str:
    """JUnit XML of every check in ``runs`` (single reports and/or trajectories); see the module doc.

    ``classname`` is ``nc-audit.<label>``: the checkpoint's label (track: its file name; a monitor run's
    records sharing one label add ``@step<N>``), else its path; ``name`` is the check's stable name.
    """
    root = ET.Element("testsuites", name=SUITE_NAME)
    records = _records(runs)
    labels = [record_label(record, index) for index, (record, _, _) in enumerate(records)]
    shared = {label for label in labels if labels.count(label) > 1}
    tests = failures = 0
    for (record, mode, gated), label in zip(records, labels, strict=True):
        if label in shared and record.step is not None:  # a monitor run: one label, many steps
            label = f"{label}@step{record.step}"
        suite, count, failed = _suite(record, label, f"{SUITE_NAME}.{mode or label}", gated)
        root.append(suite)
        tests, failures = tests + count, failures + failed
    for key, value in (("tests", tests), ("failures", failures), ("errors", 0), ("time", 0)):
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
