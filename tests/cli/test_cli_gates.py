"""CI gates of `nc-audit measure` and `nc-audit track` (docs/DESIGN.md: Command line, Exit codes).

- ``--fail-on 'METRIC OP VALUE'`` is checked on the last checkpoint of a trajectory (``--gate last``, the
  default), on the most accurate one (``--gate best``) or on every one (``--gate all``); any failure →
  exit 1, and ``--junit`` holds one test case per rule and gated checkpoint with one failure per failed
  (rule, checkpoint), under names that stay the same from run to run.
- ``--baseline REPORT`` fails when a metric moved away from its NC target by more than ``--tolerance``;
  an improvement passes.
- ``[tool.nc-audit]`` in the working directory's pyproject.toml sets fail-on, tolerance and baseline;
  a flag overrides the project's value.
- With $GITHUB_STEP_SUMMARY set, the Markdown summary is appended to that file.
- A rule naming an unknown metric, or a baseline of another schema, is bad input (exit 2, one line).

The toy runs come from runs.collapsing_problem: class means fixed, within-class noise shrinking,
so a checkpoint with less noise is strictly closer to Neural Collapse (NC1 and CDNV ∝ noise²) and
every other metric is the same.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from runs import (
    SAMPLES,
    assert_bad_input,
    collapsing_problem,
    invoke,
    junit_cases,
    sample_checkpoints,
    write_head_checkpoint,
    write_monitor_file,
    write_run,
)

from nc_audit.measurement.trajectory import measure_trajectory

BETTER_NOISE, WORSE_NOISE = 0.4, 0.8
pytestmark = pytest.mark.usefixtures("isolated_cli")


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def checkpoint_pair(tmp_path: Path) -> tuple[Path, Path]:
    """Two checkpoints of one toy run with their dumps: the better one is closer to NC in every metric."""
    better = write_head_checkpoint(tmp_path / "better.pt", collapsing_problem(BETTER_NOISE), step=20)
    worse = write_head_checkpoint(tmp_path / "worse.pt", collapsing_problem(WORSE_NOISE), step=10)
    return better, worse


def report_of(checkpoint: Path, out: Path) -> dict[str, Any]:
    """`measure CHECKPOINT --json OUT` (no gates) and the report it wrote."""
    result = invoke("measure", checkpoint, "--features", checkpoint.with_suffix(".h5"), "--json", out)
    assert result.exit_code == 0, result.output
    return read_json(out)


def failed_rules(report: dict[str, Any]) -> list[str]:
    return [check["rule"] for check in report["checks"] if not check["passed"]]


# --- threshold rules on a trajectory and their JUnit file -----------------------------------------------
@pytest.fixture(scope="module")
def sample_nc1() -> dict[str, float]:
    """NC1 of each shipped checkpoint, by file name."""
    return {report.label: report.metrics["nc1"] for report in measure_trajectory([SAMPLES], device="cpu")}


def test_a_rule_that_some_checkpoints_fail_exits_1_with_one_junit_case_per_rule_and_checkpoint(
    tmp_path: Path, sample_nc1: dict[str, float]
) -> None:
    values = sorted(sample_nc1.values())
    middle = len(values) // 2
    threshold = (values[middle - 1] + values[middle]) / 2  # about half the checkpoints pass
    rules = [f"nc1<={threshold!r}", "nc4 <= 1"]  # the second holds everywhere
    junit, out = tmp_path / "checks.xml", tmp_path / "t.json"

    result = invoke(
        "track",
        SAMPLES,
        "--gate",
        "all",
        "--fail-on",
        rules[0],
        "--fail-on",
        rules[1],
        "--junit",
        junit,
        "--json",
        out,
    )

    assert result.exit_code == 1, result.output
    expected_failures = {name for name, nc1 in sample_nc1.items() if nc1 > threshold}
    assert 0 < len(expected_failures) < len(sample_nc1)
    assert f"{len(expected_failures)} check(s) failed" in result.stderr

    records = read_json(out)["records"]
    rule_names = {check["rule"] for record in records for check in record["checks"]}
    assert len(rule_names) == 2
    for record in records:
        assert [check["passed"] for check in record["checks"]] == [
            record["label"] not in expected_failures,
            True,
        ]
        assert record["passed"] is (record["label"] not in expected_failures)

    cases = junit_cases(junit)
    pairs = Counter((case.get("classname"), case.get("name")) for case in cases)
    assert set(pairs.values()) == {1}  # exactly one case per (checkpoint, rule)
    assert set(pairs) == {(f"nc-audit.{p.name}", rule) for p in sample_checkpoints() for rule in rule_names}
    failed = [(case.get("classname"), case.get("name")) for case in cases if case.find("failure") is not None]
    nc1_rule = next(rule for rule in rule_names if rule.startswith("nc1"))
    assert sorted(failed) == sorted((f"nc-audit.{name}", nc1_rule) for name in expected_failures)


def test_rules_every_checkpoint_passes_exit_0_with_an_all_passing_junit_file(
    tmp_path: Path, sample_nc1: dict[str, float]
) -> None:
    junit = tmp_path / "checks.xml"

    result = invoke(
        "track",
        SAMPLES,
        "--gate",
        "all",
        "--fail-on",
        f"nc1<={max(sample_nc1.values()) * 1.01!r}",
        "--junit",
        junit,
    )

    assert result.exit_code == 0, result.output
    cases = junit_cases(junit)
    assert len(cases) == len(sample_nc1)
    assert all(case.find("failure") is None for case in cases)


def test_rules_gate_a_monitor_jsonl_file_too(tmp_path: Path) -> None:
    records = write_monitor_file(tmp_path / "run.jsonl")  # NC1 falls with the step
    threshold = (records[0]["metrics"]["nc1"] + records[1]["metrics"]["nc1"]) / 2
    out = tmp_path / "t.json"

    result = invoke(
        "track", tmp_path / "run.jsonl", "--gate", "all", "--fail-on", f"nc1<={threshold!r}", "--json", out
    )

    assert result.exit_code == 1, result.output
    assert [record["passed"] for record in read_json(out)["records"]] == [False, True, True]


# --- baselines ----------------------------------------------------------------------------------------
def test_measure_fails_a_regression_against_a_baseline_and_passes_an_improvement(tmp_path: Path) -> None:
    better, worse = checkpoint_pair(tmp_path)
    report_of(better, tmp_path / "better.json")
    report_of(worse, tmp_path / "worse.json")
    out = tmp_path / "gated.json"

    regression = invoke("measure", worse, "--features", worse.with_suffix(".h5"), "--baseline", tmp_path / "better.json", "--json", out)  # fmt: skip

    assert regression.exit_code == 1, regression.output
    failed = failed_rules(read_json(out))
    assert {rule.split(":")[0] for rule in failed} == {"baseline nc1", "baseline nc1_cdnv"}
    assert {check["name"] for check in read_json(out)["checks"] if not check["passed"]} == {
        "baseline nc1",
        "baseline nc1_cdnv",
    }

    improvement = invoke("measure", better, "--features", better.with_suffix(".h5"), "--baseline", tmp_path / "worse.json", "--json", out)  # fmt: skip

    assert improvement.exit_code == 0, improvement.output
    checks = read_json(out)["checks"]
    assert len(checks) >= 15 and all(check["passed"] for check in checks)  # every metric with a target


def test_tolerance_lets_a_small_regression_pass(tmp_path: Path) -> None:
    better, _ = checkpoint_pair(tmp_path)
    slightly_worse = write_head_checkpoint(
        tmp_path / "slightly.pt", collapsing_problem(BETTER_NOISE * 1.05), 30
    )
    base = report_of(better, tmp_path / "better.json")
    now = report_of(slightly_worse, tmp_path / "slightly.json")
    growth = max(
        abs(now["metrics"][key] - target) - abs(base["metrics"][key] - target)
        for key, target in base["targets"].items()
        if target is not None and base["metrics"].get(key) is not None
    )
    assert growth > 0
    args = ("measure", slightly_worse, "--features", slightly_worse.with_suffix(".h5"), "--baseline", tmp_path / "better.json")  # fmt: skip

    assert invoke(*args).exit_code == 1
    assert invoke(*args, "--tolerance", repr(growth * 0.5)).exit_code == 1
    passing = invoke(*args, "--tolerance", repr(growth * 1.5))
    assert passing.exit_code == 0, passing.output


def test_track_compares_each_checkpoint_with_the_baseline_record_of_the_same_name(tmp_path: Path) -> None:
    steps = {"e1": 1, "e2": 2, "e3": 3}
    better = write_run(tmp_path / "better", {"e1": 0.9, "e2": 0.6, "e3": 0.3}, steps)
    worse = write_run(tmp_path / "worse", {"e1": 0.9, "e2": 0.7, "e3": 0.3}, steps)  # only e2 regressed
    assert invoke("track", better, "--json", tmp_path / "better.json").exit_code == 0
    assert invoke("track", worse, "--json", tmp_path / "worse.json").exit_code == 0
    junit, out = tmp_path / "checks.xml", tmp_path / "t.json"

    regression = invoke(
        "track",
        worse,
        "--gate",
        "all",
        "--baseline",
        tmp_path / "better.json",
        "--junit",
        junit,
        "--json",
        out,
    )

    assert regression.exit_code == 1, regression.output
    assert [record["passed"] for record in read_json(out)["records"]] == [True, False, True]
    failed = {(case.get("classname"), case.get("name")) for case in junit_cases(junit) if case.find("failure") is not None}  # fmt: skip
    assert failed == {("nc-audit.e2.pt", "baseline nc1"), ("nc-audit.e2.pt", "baseline nc1_cdnv")}

    improvement = invoke("track", better, "--gate", "all", "--baseline", tmp_path / "worse.json")

    assert improvement.exit_code == 0, improvement.output


def test_track_against_a_single_report_baseline_checks_the_last_checkpoint(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", {"e1": 0.2, "e2": 0.9}, {"e1": 1, "e2": 2})  # the last one is worse
    report_of(run / "e1.pt", tmp_path / "e1.json")
    out = tmp_path / "t.json"

    result = invoke("track", run, "--gate", "all", "--baseline", tmp_path / "e1.json", "--json", out)

    assert result.exit_code == 1, result.output
    first, last = read_json(out)["records"]
    assert first["checks"] == [] and first["passed"] is True
    assert last["passed"] is False and any(rule.startswith("baseline nc1") for rule in failed_rules(last))


def test_a_monitor_run_gated_against_its_own_trajectory_passes_record_by_record(tmp_path: Path) -> None:
    """A monitor labels every record with its run name, so the step tells its records apart: the same run
    compared with itself must pass, each record against the baseline record of its own step."""
    write_monitor_file(tmp_path / "run.jsonl")
    assert invoke("track", tmp_path / "run.jsonl", "--json", tmp_path / "base.json").exit_code == 0
    out = tmp_path / "t.json"

    result = invoke(
        "track", tmp_path / "run.jsonl", "--gate", "all", "--baseline", tmp_path / "base.json", "--json", out
    )

    assert result.exit_code == 0, result.output
    records = read_json(out)["records"]
    assert all(record["passed"] for record in records)
    assert [len(record["checks"]) for record in records] == [len(records[0]["checks"])] * 3
    assert records[0]["checks"], "every record is compared with its baseline record"


def test_junit_cases_of_a_monitor_run_name_their_step(tmp_path: Path) -> None:
    """One test case per rule and checkpoint, each identifiable: records sharing a run label differ by step."""
    write_monitor_file(tmp_path / "run.jsonl")
    junit = tmp_path / "checks.xml"

    result = invoke(
        "track", tmp_path / "run.jsonl", "--gate", "all", "--fail-on", "nc1<=1e9", "--junit", junit
    )

    assert result.exit_code == 0, result.output
    cases = junit_cases(junit)
    assert len(cases) == 3
    assert len({(case.get("classname"), case.get("name")) for case in cases}) == 3


# --- [tool.nc-audit] defaults and flags -----------------------------------------------------------------
def write_pyproject(folder: Path, **settings: Any) -> None:
    lines = ["[project]", 'name = "someone-elses-model"', "", "[tool.nc-audit]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    (folder / "pyproject.toml").write_text("\n".join(lines) + "\n")


def test_project_rules_apply_and_a_fail_on_flag_replaces_them(tmp_path: Path) -> None:
    _, worse = checkpoint_pair(tmp_path)
    write_pyproject(tmp_path, **{"fail-on": ["nc1<=0", "nc4<=0"]})
    args = ("measure", worse, "--features", worse.with_suffix(".h5"), "--json", tmp_path / "r.json")

    from_project = invoke(*args)

    assert from_project.exit_code == 1, from_project.output
    assert [check["rule"] for check in read_json(tmp_path / "r.json")["checks"]] == ["nc1 <= 0", "nc4 <= 0"]

    from_flag = invoke(*args, "--fail-on", "nc1<=1e9")

    assert from_flag.exit_code == 0, from_flag.output
    assert [check["rule"] for check in read_json(tmp_path / "r.json")["checks"]] == ["nc1 <= 1000000000"]


def test_project_rules_gate_track_too(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", {"e1": 0.9, "e2": 0.1}, {"e1": 1, "e2": 2})
    reports = measure_trajectory([run], device="cpu")
    threshold = (reports[0].metrics["nc1"] + reports[1].metrics["nc1"]) / 2
    write_pyproject(tmp_path, **{"fail-on": [f"nc1 <= {threshold!r}"]})
    out = tmp_path / "t.json"

    result = invoke("track", run, "--gate", "all", "--json", out)

    assert result.exit_code == 1, result.output
    assert [record["passed"] for record in read_json(out)["records"]] == [False, True]


def test_project_baseline_is_read_relative_to_the_pyproject_and_a_flag_replaces_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    better, worse = checkpoint_pair(tmp_path)
    (tmp_path / "reports").mkdir()
    report_of(better, tmp_path / "reports" / "better.json")
    report_of(worse, tmp_path / "reports" / "worse.json")
    write_pyproject(tmp_path, baseline="reports/better.json")
    (tmp_path / "ci").mkdir()
    monkeypatch.chdir(tmp_path / "ci")  # the nearest pyproject.toml is one folder up
    args = ("measure", worse, "--features", worse.with_suffix(".h5"))

    from_project = invoke(*args)

    assert from_project.exit_code == 1, from_project.output

    from_flag = invoke(*args, "--baseline", tmp_path / "reports" / "worse.json")

    assert from_flag.exit_code == 0, from_flag.output


def test_project_tolerance_applies_and_a_tolerance_flag_replaces_it(tmp_path: Path) -> None:
    better, worse = checkpoint_pair(tmp_path)
    report_of(better, tmp_path / "better.json")
    write_pyproject(tmp_path, baseline="better.json", tolerance=1e6)
    args = ("measure", worse, "--features", worse.with_suffix(".h5"))

    from_project = invoke(*args)

    assert from_project.exit_code == 0, from_project.output

    from_flag = invoke(*args, "--tolerance", "0")

    assert from_flag.exit_code == 1, from_flag.output


# --- GitHub step summary --------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["measure", "track"])
def test_the_markdown_summary_is_appended_to_the_github_step_summary(tmp_path: Path, command: str) -> None:
    run = write_run(tmp_path / "run", {"e1": 0.9, "e2": 0.1}, {"e1": 1, "e2": 2})
    source = [run / "e1.pt", "--features", run / "e1.h5"] if command == "measure" else [run]
    summary = tmp_path / "summary.md"
    summary.write_text("## an earlier step\n\nits output\n")
    markdown = tmp_path / "summary-copy.md"

    result = invoke(command, *source, "--fail-on", "nc1<=0", "--markdown", markdown,
                    env={"GITHUB_STEP_SUMMARY": str(summary)})  # fmt: skip

    assert result.exit_code == 1, result.output  # a failed gate is when CI needs the summary most
    written = markdown.read_text()
    assert "nc1" in written
    assert summary.read_text() == "## an earlier step\n\nits output\n" + written


def test_without_github_step_summary_nothing_else_is_written(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", {"e1": 0.9}, {"e1": 1})
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    result = invoke("track", run)

    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


# --- bad gate input: exit 2, one line ---------------------------------------------------------------------
@pytest.mark.parametrize("command", ["measure", "track"])
def test_a_baseline_of_another_schema_version_is_bad_input(tmp_path: Path, command: str) -> None:
    better, _ = checkpoint_pair(tmp_path)
    report = report_of(better, tmp_path / "better.json")
    baseline = tmp_path / "future.json"
    baseline.write_text(json.dumps({**report, "schema": "nc-audit-report/2"}))
    source = [better, "--features", better.with_suffix(".h5")] if command == "measure" else [better]
    out = tmp_path / "gated.json"

    result = invoke(command, *source, "--baseline", baseline, "--json", out)

    assert_bad_input(result, "future.json", "nc-audit-report/2", "nc-audit-report/1")
    assert not out.exists()


@pytest.mark.parametrize("command", ["measure", "track"])
def test_a_rule_naming_an_unknown_metric_suggests_the_closest(tmp_path: Path, command: str) -> None:
    better, _ = checkpoint_pair(tmp_path)
    source = [better, "--features", better.with_suffix(".h5")] if command == "measure" else [better]

    result = invoke(command, *source, "--fail-on", "nc1_cdvn<=0.5")

    assert_bad_input(result, "'nc1_cdvn'", "did you mean 'nc1_cdnv'?")


def test_an_unknown_metric_in_the_project_rules_is_bad_input_too(tmp_path: Path) -> None:
    better, _ = checkpoint_pair(tmp_path)
    write_pyproject(tmp_path, **{"fail-on": ["mirr>=0.9"]})

    result = invoke("track", better)

    assert_bad_input(result, "'mirr'", "did you mean 'mir'?")


# --- --gate last | best | all ---------------------------------------------------------------------------
def gate_run(tmp_path: Path) -> Path:
    """Three checkpoints: an untrained-like e1 (noisy), the cleanest e2, and e3 a little worse than e2."""
    return write_run(tmp_path / "run", {"e1": 2.0, "e2": 0.1, "e3": 0.3}, {"e1": 1, "e2": 2, "e3": 3})


def test_gate_last_is_the_default_and_ignores_an_untrained_first_checkpoint(tmp_path: Path) -> None:
    run = gate_run(tmp_path)
    reports = measure_trajectory([run], device="cpu")
    threshold = round((reports[0].metrics["nc1"] + reports[2].metrics["nc1"]) / 2, 4)  # e1 fails, e3 passes
    out, junit = tmp_path / "t.json", tmp_path / "j.xml"

    result = invoke("track", run, "--fail-on", f"nc1<={threshold!r}", "--json", out, "--junit", junit)

    assert result.exit_code == 0, result.output
    data = read_json(out)
    assert data["gate"] == "last"
    assert [(r["gated"], len(r["checks"])) for r in data["records"]] == [(False, 0), (False, 0), (True, 1)]
    assert [(c.get("classname"), c.get("name")) for c in junit_cases(junit)] == [
        ("nc-audit.last", f"nc1 <= {threshold:g}")
    ]
    assert "gate: the last checkpoint (e3.pt)" in result.stdout
    assert invoke("track", run, "--gate", "all", "--fail-on", f"nc1<={threshold!r}").exit_code == 1


def test_gate_best_holds_the_most_accurate_checkpoint(tmp_path: Path) -> None:
    run = gate_run(tmp_path)
    reports = measure_trajectory([run], device="cpu")
    accuracies = [report.details["accuracy"] for report in reports]
    best = max(range(3), key=lambda i: (accuracies[i], i))
    out = tmp_path / "t.json"

    result = invoke("track", run, "--gate", "best", "--fail-on", "nc1<=1e9", "--json", out)

    assert result.exit_code == 0, result.output
    assert [record["gated"] for record in read_json(out)["records"]] == [i == best for i in range(3)]


def test_gate_best_without_accuracies_is_bad_input(tmp_path: Path) -> None:
    records = write_monitor_file(tmp_path / "run.jsonl")
    for record in records:
        record["metrics"].pop("accuracy")
        record["details"].pop("accuracy")  # a monitor record is a measure report: accuracy under details too
    (tmp_path / "bare.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    result = invoke("track", tmp_path / "bare.jsonl", "--gate", "best", "--fail-on", "nc1<=1")

    assert_bad_input(result, "--gate best", "accuracy")


def test_gate_last_compares_the_last_checkpoint_with_the_baseline_record_of_the_same_name(
    tmp_path: Path,
) -> None:
    steps = {"e1": 1, "e2": 2, "e3": 3}
    better = write_run(tmp_path / "better", {"e1": 0.9, "e2": 0.6, "e3": 0.3}, steps)
    worse = write_run(tmp_path / "worse", {"e1": 0.9, "e2": 0.9, "e3": 0.5}, steps)  # e2 and e3 regressed
    assert invoke("track", better, "--json", tmp_path / "better.json").exit_code == 0
    out = tmp_path / "t.json"

    result = invoke("track", worse, "--baseline", tmp_path / "better.json", "--json", out)

    assert result.exit_code == 1, result.output
    records = read_json(out)["records"]
    assert [bool(record["checks"]) for record in records] == [False, False, True]
    assert {c["name"] for c in records[-1]["checks"] if not c["passed"]} == {
        "baseline nc1",
        "baseline nc1_cdnv",
    }
