"""The GitHub Action (action.yml): its shell steps run here as a runner runs them — the `run:` scripts taken
from action.yml, `${{ inputs.* }}` and `${{ github.action_path }}` filled in, the GITHUB_* variables set —
and what they leave behind is checked: the reports, the step summary, the step outputs, the exit code.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from runs import ROOT, SAMPLES, junit_suites, parse_html

ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
EXPRESSION = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")
LAST = SAMPLES / "epoch_0300.pt"


def expand(text: str, inputs: dict[str, str]) -> str:
    """A runner's substitution of the expressions the shell steps use."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "github.action_path":
            return str(ROOT)
        if name.startswith("inputs."):
            return inputs[name.removeprefix("inputs.")]
        raise AssertionError(f"a shell step uses an expression the test cannot fill: {name}")

    return EXPRESSION.sub(value, text)


def run_steps(tmp_path: Path, given: dict[str, str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run every `run:` step of the action in order (stopping at the first failure, as a runner does);
    return the exit codes, the step outputs, the summary and the log."""
    inputs = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()} | given
    work = tmp_path / "workspace"
    work.mkdir(exist_ok=True)
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs.txt"
    base = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "GITHUB_ACTIONS": "true",
        "GITHUB_ACTION_PATH": str(ROOT),
        "GITHUB_WORKSPACE": str(work),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(outputs),
        "RUNNER_TEMP": str(tmp_path),
        "NC_AUDIT_CACHE": str(tmp_path / "cache"),
        **(env or {}),
    }
    codes, log = {}, ""
    for step in ACTION["runs"]["steps"]:
        if "run" not in step:
            continue
        assert step["shell"] == "bash"
        step_env = {key: expand(str(value), inputs) for key, value in (step.get("env") or {}).items()}
        script = expand(step["run"], inputs)
        result = subprocess.run(["bash", "-e", "-c", script], cwd=work, env={**base, **step_env},
                                capture_output=True, text=True, timeout=600)  # fmt: skip
        codes[step["name"]] = result.returncode
        log += result.stdout + result.stderr
        if result.returncode:
            break
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines()) if outputs.exists() else {}
    return {"codes": codes, "outputs": values, "summary": summary.read_text() if summary.exists() else "",
            "log": log, "work": work}  # fmt: skip


def test_the_action_is_composite_and_uploads_the_reports_even_after_a_failure() -> None:
    assert ACTION["runs"]["using"] == "composite"
    upload = next(step for step in ACTION["runs"]["steps"] if "uses" in step)
    assert upload["uses"].startswith("actions/upload-artifact@v")
    assert "always()" in upload["if"] and upload["with"]["path"] == "${{ inputs.output-dir }}"
    assert set(ACTION["outputs"]) >= {"exit-code", "report", "junit", "html"}
    for step in ACTION["runs"]["steps"]:  # inputs reach the shell through env, never pasted into a script
        assert "inputs." not in step.get("run", "")


@pytest.mark.slow  # runs the action script end to end
def test_measure_passes_and_leaves_every_report(tmp_path: Path) -> None:
    args = f"{LAST} --features {LAST.with_suffix('.h5')} --fail-on 'nc1<=0.5' --fail-on 'nc4 <= 0.05'"

    ran = run_steps(tmp_path, {"command": "measure", "args": args, "install": ""})

    assert ran["codes"] == {"Install nc-audit": 0, "Run nc-audit": 0}, ran["log"]
    out = ran["work"] / "nc-audit-report"
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "report.html", "report.json", "summary.md"]
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is True and [c["name"] for c in report["checks"]] == ["nc1 <= 0.5", "nc4 <= 0.05"]
    assert [suite.get("tests") for suite in junit_suites(out / "junit.xml")] == ["2"]
    parse_html((out / "report.html").read_text())
    assert ran["outputs"] == {
        "exit-code": "0",
        "report": "nc-audit-report/report.json",
        "junit": "nc-audit-report/junit.xml",
        "html": "nc-audit-report/report.html",
        "output-dir": "nc-audit-report",
    }
    assert "## nc-audit:" in ran["summary"] and "**Verdict: ✅ passed**" in ran["summary"]
    assert "reports in `nc-audit-report`" in ran["summary"]
    assert "install skipped" in ran["log"]


@pytest.mark.slow  # runs the action script end to end
def test_a_failing_track_gate_fails_the_step_with_code_1_and_still_writes_the_reports(tmp_path: Path) -> None:
    ran = run_steps(tmp_path, {"command": "track", "args": f"{SAMPLES} --fail-on 'nc1<=0.001'", "install": "",
                               "output-dir": "out/audit"})  # fmt: skip

    assert ran["codes"]["Run nc-audit"] == 1
    assert ran["outputs"]["exit-code"] == "1"
    out = ran["work"] / "out" / "audit"
    assert json.loads((out / "report.json").read_text())["gate"] == "last"
    assert "::group::nc-audit epoch_0300.pt (step 300)" in ran["log"]  # per-checkpoint groups in the log
    assert "❌" in ran["summary"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"command": "extract"}, "command must be measure or track"),
        ({"args": "'unbalanced"}, "cannot split the arguments"),
    ],
)
def test_bad_inputs_fail_the_step_with_code_2(tmp_path: Path, given: dict[str, str], message: str) -> None:
    ran = run_steps(tmp_path, {"args": "x.pt", "install": "", **given})
    assert ran["codes"]["Run nc-audit"] == 2 and message in ran["log"]


def test_quoted_arguments_are_split_like_a_shell_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    ran = run_steps(tmp_path, {"args": f"'{LAST}' --features {LAST.with_suffix('.h5')} --fail-on \"nc1 <= 0.5\" $(touch {marker})", "install": ""})  # fmt: skip
    assert ran["codes"]["Run nc-audit"] == 2  # "$(touch" is an unexpected extra argument, not a command
    assert not marker.exists()


def test_the_install_step_installs_the_action_itself_with_pip(tmp_path: Path) -> None:
    """With a stand-in python that records its calls: pip gets the extra arguments and the action's folder."""
    shims = tmp_path / "shims"
    shims.mkdir()
    record = tmp_path / "calls.txt"
    (shims / "python3").write_text(  # pip calls are recorded, anything else runs
        f'#!/bin/sh\nif [ "$1" != -m ]; then exec {sys.executable} "$@"; fi\n'
        f'printf "%s|" "$@" >> {record}\necho >> {record}\n'
    )
    (shims / "python3").chmod(0o755)
    env = {"PATH": f"{shims}{os.pathsep}/usr/bin{os.pathsep}/bin"}
    pip_args = "--no-deps --extra-index-url 'https://example.invalid/a b'"

    ran = run_steps(tmp_path, {"args": "x.pt", "pip-args": pip_args}, env=env)

    assert ran["codes"]["Install nc-audit"] == 0, ran["log"]
    calls = record.read_text().splitlines()
    assert f"-m|pip|install|--no-deps|--extra-index-url|https://example.invalid/a b|{ROOT}|" in calls
