"""``nc-audit track run.jsonl`` given no gates of its own holds the run to the checks its records carry
(the Monitor's / callbacks' ``fail_on``, ``baseline``): exit 1 when the gated record failed one, the
threshold re-evaluated from its rule (a record cannot pass a rule its numbers fail); gates given to
``track`` replace the recorded ones (gating/recorded.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner, Result

from nc_audit.cli import app
from nc_audit.measurement.monitor import Monitor


@pytest.fixture(autouse=True)
def no_project(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no pyproject.toml gates
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def run(path: Path, rules: list[str], steps: int = 3) -> Path:
    """A Monitor run of ``steps`` random batches (nc1 well above 1e-12, well below 1e6) gated by ``rules``."""
    torch.manual_seed(0)
    monitor = Monitor(path, every=1, fail_on=rules)
    weight = torch.randn(3, 8)
    for step in range(steps):
        monitor.log(step, torch.randn(30, 8), torch.arange(30) % 3, weight, None)
    return path


def track(path: Path, *options: str) -> Result:
    return CliRunner().invoke(app, ["track", str(path), "-q", "--format", "json", *options])


def verdicts(result: Result) -> list[tuple[bool, list[bool]]]:
    document = json.loads(result.stdout)
    return [
        (record["gated"], [check["passed"] for check in record["checks"]]) for record in document["records"]
    ]


def test_a_failing_recorded_rule_fails_track_on_the_gated_record(tmp_path: Path) -> None:
    path = run(tmp_path / "nc.jsonl", ["nc1<=1e-12"])
    result = track(path)
    assert result.exit_code == 1, result.output
    assert verdicts(result) == [(False, []), (False, []), (True, [False])]  # --gate last
    result = track(path, "--gate", "all")
    assert result.exit_code == 1 and verdicts(result) == [(True, [False])] * 3
    assert "nc1 <= 1e-12" in track(path).stdout


def test_passing_recorded_rules_pass_and_show_their_checks(tmp_path: Path) -> None:
    path = run(tmp_path / "nc.jsonl", ["nc1<=1e6", "mir<=1"])
    result = track(path)
    assert result.exit_code == 0, result.output
    assert verdicts(result)[-1] == (True, [True, True])


def test_gates_given_to_track_replace_the_recorded_ones(tmp_path: Path) -> None:
    failing = run(tmp_path / "fail.jsonl", ["nc1<=1e-12"])
    assert track(failing, "--fail-on", "nc1<=1e6").exit_code == 0
    passing = run(tmp_path / "pass.jsonl", ["nc1<=1e6"])
    assert track(passing, "--fail-on", "nc1<=1e-12").exit_code == 1
    (tmp_path / "pyproject.toml").write_text('[tool.nc-audit]\nfail-on = ["nc1<=1e6"]\n')
    assert track(failing).exit_code == 0  # the project's gates are gates given to track


def test_a_record_that_claims_to_pass_a_rule_its_numbers_fail_fails(tmp_path: Path) -> None:
    path = run(tmp_path / "nc.jsonl", ["nc1<=1e-12"])
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        record["passed"] = True
        record["checks"][0]["passed"] = True
    forged = tmp_path / "forged.jsonl"
    forged.write_text("".join(json.dumps(record) + "\n" for record in records))
    result = track(forged)
    assert result.exit_code == 1, result.output


def test_a_recorded_rule_this_version_cannot_read_is_a_one_line_error(tmp_path: Path) -> None:
    path = run(tmp_path / "nc.jsonl", ["nc1<=1e-12"])
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[-1]["checks"][0]["rule"] = "nosuch <= 1"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    result = CliRunner().invoke(app, ["track", str(path), "-q"])
    assert result.exit_code == 2, result.output
    assert "nc.jsonl: record 2: a recorded check: unknown metric 'nosuch'" in result.stderr
    assert "Traceback" not in result.output


def test_a_run_without_recorded_checks_passes(tmp_path: Path) -> None:
    path = run(tmp_path / "nc.jsonl", [])
    result = track(path)
    assert result.exit_code == 0, result.output
    assert verdicts(result)[-1] == (True, [])
