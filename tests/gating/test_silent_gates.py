"""A gate that checks nothing is an error that says why, never a silent pass (issue 10, section 9)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nc_audit.core.errors import InputError
from nc_audit.gating.baseline import load_baseline
from nc_audit.gating.gate import gate
from nc_audit.gating.rules import evaluate_rules
from nc_audit.report.model import Report


def _baseline(tmp_path: Path, metrics: dict) -> Path:
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"schema": "nc-audit-report/1", "metrics": metrics}))
    return path


@pytest.mark.parametrize(
    "metrics",
    [
        {"nc1": None, "mir": None},
        {"nc1": "0.5"},
        {"nc1": float("nan")},
        {"nc1": float("inf")},
        {},
        {"nc1": [1]},
    ],
    ids=["null", "strings", "nan", "inf", "empty", "list"],
)
def test_a_baseline_without_any_number_is_refused_when_loaded(tmp_path: Path, metrics: dict) -> None:
    with pytest.raises(InputError, match=r"baseline.json: the baseline holds no metric value"):
        load_baseline(_baseline(tmp_path, metrics))


def test_a_baseline_sharing_no_metric_with_the_run_is_refused(tmp_path: Path) -> None:
    path = _baseline(tmp_path, {"bogus": 0.5})
    report = Report.from_dict(
        {"metrics": {"nc1": 0.1}, "targets": {"nc1": 0.0}, "features": {"num_classes": 3}}, "run"
    )
    with pytest.raises(InputError, match=r"baseline.json: shares no metric value with this run"):
        gate(report, (), load_baseline(path))
    with pytest.raises(InputError, match=r"baseline.json: shares no metric value with this run"):
        gate(report, (), path)  # a path is loaded the same way


def test_every_rule_on_an_undefined_metric_fails() -> None:
    from nc_audit.gating.rules import parse_rule

    rules = [parse_rule(text, ["nc1", "mir"]) for text in ("nc1<=0.5", "nc1>=-1", "mir!=2")]
    checks = evaluate_rules({"nc1": None, "mir": float("nan")}, rules)
    assert [check.passed for check in checks] == [False, False, False]
