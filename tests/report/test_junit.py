"""JUnit XML (nc_audit/report/junit.py): stable test names, the numbers in messages and properties, one
suite per checkpoint, and validity against the JUnit schema CI report readers accept (tests/report/junit.xsd).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Any

import pytest
import xmlschema
from runs import JUNIT_XSD, junit_cases, junit_suites

from nc_audit.gating.baseline import Baseline
from nc_audit.gating.gate import gate
from nc_audit.report.junit import render_junit as render_typed
from nc_audit.report.model import Report, Trajectory

MIR_NC = 0.952351


def record(
    label: str | None, metrics: dict[str, Any], step: int | None = None, **extra: Any
) -> dict[str, Any]:
    """A report record for C = 10 (nc-audit-report/1 plus step and label)."""
    targets = {"nc1": 0.0, "mir": MIR_NC, "hdr": 0.0}
    return {
        "schema": "nc-audit-report/1",
        "checkpoint": {"path": f"runs/{label}.pt" if label else None, "head": "fc"},
        "features": {"num_classes": 10},
        "metrics": metrics,
        "targets": targets,
        "checks": [],
        "step": step,
        "label": label,
        **extra,
    }


def gated(report: dict[str, Any], rules: list[str], baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report with the checks the gate gives it (its JSON form, plus the record's other keys)."""
    base = None if baseline is None else Baseline(Trajectory.of(Report.from_dict(baseline, "base.json")))
    result = gate(Report.from_dict(report, "run.json"), rules, base, tolerance=0.01)
    return {**report, "checks": result.to_dict()["checks"], "passed": result.passed}


def typed(run: dict[str, Any]) -> Report | Trajectory:
    """A report or trajectory dict as the typed result the renderer takes."""
    if run.get("schema") == "nc-audit-trajectory/1":
        records = tuple(Report.from_dict(record, "run.json") for record in run["records"])
        return Trajectory(records, gate=run.get("gate"))
    return Report.from_dict(run, "run.json")


def render_junit(runs: list[dict[str, Any]]) -> str:
    return render_typed([typed(run) for run in runs])


def names(xml: str) -> list[tuple[str | None, str | None]]:
    return [(case.get("classname"), case.get("name")) for case in junit_cases(xml)]


def properties(suite: ET.Element) -> dict[str, str]:
    return {prop.get("name"): prop.get("value") for prop in suite.iter("property")}


def test_test_names_do_not_change_when_the_values_do() -> None:
    baseline = record("final", {"nc1": 0.10, "mir": 0.90, "hdr": 0.05})
    runs = [
        gated(record("final", {"nc1": nc1, "mir": mir, "hdr": 0.05}), ["nc1<=0.5", "mir >= 0.9"], baseline)
        for nc1, mir in ((0.30, 0.91), (0.02, 0.85))
    ]
    first, second = (render_junit([run]) for run in runs)
    assert names(first) == names(second)
    assert names(first) == [
        ("nc-audit.final", "nc1 <= 0.5"),
        ("nc-audit.final", "mir >= 0.9"),
        ("nc-audit.final", "baseline nc1"),
        ("nc-audit.final", "baseline mir"),
        ("nc-audit.final", "baseline hdr"),
    ]
    assert first != second  # the values live elsewhere in the file


def test_values_and_thresholds_are_in_the_failure_message_and_the_properties() -> None:
    baseline = record("final", {"nc1": 0.10, "mir": 0.90, "hdr": 0.05})
    report = gated(record("final", {"nc1": 0.30, "mir": 0.91, "hdr": 0.05}), ["nc1<=0.2", "hdr<=1"], baseline)
    (suite,) = junit_suites(render_junit([report]))
    cases = {case.get("name"): case for case in suite.findall("testcase")}

    failure = cases["nc1 <= 0.2"].find("failure")
    assert failure.get("message") == "nc1 = 0.3, required <= 0.2"
    assert failure.get("type") == "nc-audit.threshold"
    assert cases["hdr <= 1"].find("failure") is None
    assert cases["hdr <= 1"].findtext("system-out") == "hdr = 0.05, passes <= 1"
    baseline_failure = cases["baseline nc1"].find("failure")
    assert baseline_failure.get("type") == "nc-audit.baseline"
    assert baseline_failure.get("message") == (
        "nc1 = 0.3, baseline 0.1; |Δ to NC| 0.1 → 0.3 (tolerance 0.01, target 0)"
    )

    found = properties(suite)
    assert found["nc1 <= 0.2: value"] == "0.3" and found["nc1 <= 0.2: threshold"] == "0.2"
    assert found["nc1 <= 0.2: passed"] == "false" and found["hdr <= 1: passed"] == "true"
    assert found["baseline mir: baseline"] == "0.9" and found["baseline mir: target"] == "0.952351"
    assert found["baseline mir: tolerance"] == "0.01" and found["checkpoint"] == "runs/final.pt"


def test_undefined_and_unmeasured_metrics_say_so() -> None:
    report = gated(record("x", {"mir": None}), ["mir>=0.9", "accuracy>=0.5"])
    messages = [case.find("failure").get("message") for case in junit_cases(render_junit([report]))]
    assert messages == ["mir is undefined, required >= 0.9", "accuracy was not measured, required >= 0.5"]


def test_a_trajectory_has_one_suite_per_checkpoint_in_order() -> None:
    records = [
        gated(record(f"epoch_{step}.pt", {"nc1": 1.0 / step}, step), ["nc1<=0.4"]) for step in (1, 2, 5)
    ]
    trajectory = {"schema": "nc-audit-trajectory/1", "records": records, "gate": "all"}
    suites = junit_suites(render_junit([trajectory]))
    assert [suite.get("name") for suite in suites] == [f"nc-audit: epoch_{s}.pt" for s in (1, 2, 5)]
    assert [suite.get("failures") for suite in suites] == ["1", "1", "0"]
    assert [properties(suite)["step"] for suite in suites] == ["1", "2", "5"]
    assert [case.get("classname") for case in junit_cases(render_junit([trajectory]))] == [
        f"nc-audit.epoch_{s}.pt" for s in (1, 2, 5)
    ]


def test_a_trajectory_gated_on_its_last_checkpoint_keeps_test_names_when_it_grows() -> None:
    """With --gate last the case is filed under nc-audit.last: a longer run does not rename it."""

    def run(steps: tuple[int, ...]) -> str:
        records = [record(f"epoch_{s}.pt", {"nc1": 1.0 / s}, s, gated=False) for s in steps]
        records[-1] = {**gated(records[-1], ["nc1<=0.4"]), "gated": True}
        return render_junit([{"schema": "nc-audit-trajectory/1", "records": records, "gate": "last"}])

    short, longer = run((1, 2)), run((1, 2, 3))
    assert names(short) == names(longer) == [("nc-audit.last", "nc1 <= 0.4")]
    suites = junit_suites(longer)
    assert len(suites) == 3 and [s.get("tests") for s in suites] == ["0", "0", "1"]
    assert properties(suites[-1])["label"] == "epoch_3.pt" and properties(suites[-1])["gated"] == "true"


def test_monitor_records_sharing_a_label_are_told_apart_by_step_and_never_named_none() -> None:
    records = [gated(record("run", {"nc1": 0.1}, step), ["nc1<=1"]) for step in (0, 10)]
    assert {c for c, _ in names(render_junit([{"schema": "nc-audit-trajectory/1", "records": records}]))} == {
        "nc-audit.run@step0",
        "nc-audit.run@step10",
    }
    unlabelled = [gated(record(None, {"nc1": 0.1}, step), ["nc1<=1"]) for step in (0, 10)]
    xml = render_junit([{"schema": "nc-audit-trajectory/1", "records": unlabelled}])
    assert "None" not in xml
    assert [c for c, _ in names(xml)] == ["nc-audit.step 0", "nc-audit.step 10"]


def test_hostile_names_stay_valid_xml() -> None:
    label = 'a<b>&"c"\x1b[31m\x00'
    report = gated(record(label, {"nc1": math.nan}), ["nc1<=1"])
    xml = render_junit([report])
    (case,) = junit_cases(xml)
    assert case.get("classname") == 'nc-audit.a<b>&"c"\\x1b[31m\\x00'


def test_an_empty_run_is_a_valid_empty_file() -> None:
    assert junit_suites(render_junit([])) == []


def test_the_schema_rejects_what_ci_readers_would_not_accept() -> None:
    """The validation can fail: the XSD is not a rubber stamp."""
    schema = xmlschema.XMLSchema(JUNIT_XSD)
    good = '<testsuites><testsuite name="s" tests="1" failures="0" errors="0"><testcase name="t" classname="c"/></testsuite></testsuites>'
    schema.validate(good)
    for bad in (
        good.replace(' tests="1"', ""),  # a suite without its count
        good.replace('name="t" ', ""),  # a nameless test case
        good.replace('failures="0"', 'failures="-1"'),
        good.replace("<testcase", "<testcase time='1 s'"),
        good.replace(
            '<testcase name="t" classname="c"/>',
            '<testcase name="t" classname="c"><failure/><failure/></testcase>',
        ),
    ):
        with pytest.raises(xmlschema.XMLSchemaValidationError):
            schema.validate(bad)


def test_a_report_without_a_label_is_named_by_its_checkpoint_path_before_its_step() -> None:
    """`measure` reports carry the checkpoint's step but no label: the test cases keep the path as their
    class name (as every release wrote them), in JUnit as in every other format (one record label)."""
    from nc_audit.report.model import record_label

    report = gated(
        {**record(None, {"nc1": 0.1}, step=300), "checkpoint": {"path": "runs/final.pt"}}, ["nc1<=1"]
    )
    assert names(render_junit([report])) == [("nc-audit.runs/final.pt", "nc1 <= 1")]
    assert record_label(report) == "runs/final.pt"
    assert record_label({"step": 3}) == "step 3" and record_label({}, 2) == "record 2"
