"""`nc-audit measure` as a person and a CI job use it (docs/DESIGN.md, Command line).

Exit codes: 0 done and every check passed, 1 a check failed, 2 bad usage or bad input — with one
line on stderr that names the file and the problem, no traceback, and no report written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import runs
import torch
from conftest import CheckpointWriter, CreatesAFile, DumpWriter, backbone_state, make_random_problem
from reference import ALL_KEYS, Problem, reference_metrics, relative_difference
from typer.testing import CliRunner, Result

import nc_audit
from nc_audit.cli import app

REPORT_KEYS = {"schema", "nc_audit_version", "checkpoint", "features", "conventions", "metrics", "targets",
               "notes", "checks", "passed"}  # fmt: skip


@pytest.fixture(autouse=True)
def isolated_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in tmp_path (no project pyproject defaults), never append to a real CI step summary."""
    monkeypatch.chdir(tmp_path)
    for name in ("GITHUB_STEP_SUMMARY", "NC_AUDIT_DEBUG"):
        monkeypatch.delenv(name, raising=False)


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, ["measure", *map(str, args)], env=env)


def error_line(result: Result) -> str:
    """The single non-blank stderr line of a bad-input run (the progress bar may leave a blank one)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got {result.stderr!r}"
    return lines[0]


def assert_bad_input(result: Result, file: Path | str | None, *fragments: str) -> str:
    """:func:`runs.assert_bad_input`, the line also naming ``file``."""
    return runs.assert_bad_input(result, *fragments, *([Path(file).name] if file is not None else []))


# --- reports ------------------------------------------------------------------------------------------
def test_table_output_names_every_metric(random_dump: Path) -> None:
    result = invoke(random_dump)
    assert result.exit_code == 0, result.output
    for key in ALL_KEYS:
        assert key in result.stdout, key
    assert "NC target" in result.stdout


def test_json_output_follows_the_report_schema(
    random_checkpoint: Path, write_dump: DumpWriter, random_problem: Problem
) -> None:
    dump = write_dump(random_problem, head=False, feature_dtype=np.float32)
    result = invoke(random_checkpoint, "--features", dump, "--format", "json", "--no-progress")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)

    assert set(report) >= REPORT_KEYS
    assert report["schema"] == "nc-audit-report/1"
    assert report["nc_audit_version"] == nc_audit.__version__
    assert report["checkpoint"]["path"] == str(random_checkpoint)
    assert report["checkpoint"]["sha256"] == hashlib.sha256(random_checkpoint.read_bytes()).hexdigest()
    assert report["checkpoint"]["head"] == "fc"
    features = report["features"]
    assert features["path"] == str(dump) and features["split"] == "all"
    assert (features["num_samples"], features["feature_dim"], features["num_classes"]) == (991, 12, 7)
    conventions = report["conventions"]
    assert conventions["global_mean"] == "sample-weighted"
    assert conventions["nc4_bias"] is True and conventions["std"] == "population"
    assert list(report["metrics"]) == list(ALL_KEYS)
    assert set(report["targets"]) >= set(ALL_KEYS)
    assert isinstance(report["notes"], list)
    assert report["checks"] == [] and report["passed"] is True

    stored = random_problem.features.astype(np.float32).astype(np.float64)
    expected = reference_metrics(stored, random_problem.labels, random_problem.W, random_problem.b)
    for key in ALL_KEYS:  # JSON round-trips floats exactly: the CLI reports the library's numbers
        assert relative_difference(report["metrics"][key], expected[key]) <= 1e-8, key


def test_json_and_markdown_files_are_written_in_the_same_run(random_dump: Path, tmp_path: Path) -> None:
    json_path, markdown_path = tmp_path / "out" / "report.json", tmp_path / "report.md"
    (tmp_path / "out").mkdir()
    result = invoke(random_dump, "--json", json_path, "--markdown", markdown_path)

    assert result.exit_code == 0, result.output
    assert "nc1_cdnv" in result.stdout  # the table still goes to the log
    report = json.loads(json_path.read_text())
    assert report["schema"] == "nc-audit-report/1" and list(report["metrics"]) == list(ALL_KEYS)
    markdown = markdown_path.read_text()
    for key in ALL_KEYS:
        assert key in markdown, key


def test_the_markdown_summary_is_appended_to_the_github_step_summary(
    random_dump: Path, tmp_path: Path
) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("## earlier step\n")
    result = invoke(random_dump, "--no-progress", env={"GITHUB_STEP_SUMMARY": str(summary)})

    assert result.exit_code == 0, result.output
    text = summary.read_text()
    assert text.startswith("## earlier step\n")
    assert "mir" in text and "nc1" in text and len(text) > 200


def test_passing_rules_exit_0(random_dump: Path) -> None:
    result = invoke(random_dump, "--format", "json", "--fail-on", "nc1<=10", "--fail-on", "mir >= 0.1")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [check["passed"] for check in report["checks"]] == [True, True]
    assert report["passed"] is True


def test_a_failing_rule_exits_1_and_is_listed(random_dump: Path, tmp_path: Path) -> None:
    json_path = tmp_path / "report.json"
    result = invoke(random_dump, "--fail-on", "nc1<=0.01", "--fail-on", "nc4<=1", "--json", json_path)

    assert result.exit_code == 1, result.output
    assert "nc1 <= 0.01" in result.stdout and "FAIL" in result.stdout
    assert "1 check(s) failed" in result.stderr
    report = json.loads(json_path.read_text())  # the report is still written: CI keeps it as an artifact
    assert report["passed"] is False
    failed = [check for check in report["checks"] if not check["passed"]]
    assert [check["rule"] for check in failed] == ["nc1 <= 0.01"]
    assert failed[0]["value"] == report["metrics"]["nc1"]


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ("nc1<<0.5", "cannot read the rule 'nc1<<0.5'"),
        ("ncl<=0.5", "unknown metric 'ncl'"),
        ("mir>=x", "not a number"),
    ],
)
def test_a_bad_rule_exits_2_before_measuring(random_dump: Path, rule: str, fragment: str) -> None:
    assert_bad_input(invoke(random_dump, "--fail-on", rule), None, fragment)


# --- bad inputs ---------------------------------------------------------------------------------------
@dataclass
class Setup:
    """What a bad-input case has to work with (all files live in tmp_path)."""

    tmp_path: Path
    problem: Problem
    write_dump: DumpWriter
    write_checkpoint: CheckpointWriter

    def checkpoint(self, name: str = "model.pt") -> Path:
        return self.write_checkpoint(backbone_state(self.problem), name)


Case = tuple[list[str | Path], Path | None, str]  # command arguments, the file to name, a message fragment
BadCase = Callable[[Setup], Case]


def missing_checkpoint(s: Setup) -> Case:
    return (
        [s.tmp_path / "missing.pt", "--features", s.write_dump(s.problem)],
        s.tmp_path / "missing.pt",
        "no such checkpoint file",
    )


def missing_dump(s: Setup) -> Case:
    return (
        [s.checkpoint(), "--features", s.tmp_path / "missing.h5"],
        s.tmp_path / "missing.h5",
        "no such feature dump",
    )


def pickle_that_runs_code(s: Setup) -> Case:
    path = s.tmp_path / "evil.pt"
    torch.save({"state_dict": backbone_state(s.problem), "hook": CreatesAFile(s.tmp_path / "pwned")}, path)
    return [path, "--features", s.write_dump(s.problem)], path, "could execute code"


def truncated_dump(s: Setup) -> Case:
    path = s.write_dump(s.problem, "truncated.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return [path], path, "truncated or damaged HDF5 file"


def not_hdf5(s: Setup) -> Case:
    path = s.tmp_path / "notes.h5"
    path.write_text("features,labels\n0.1,0\n")
    return [s.checkpoint(), "--features", path], path, "not an HDF5 file"


def labels_out_of_range(s: Setup) -> Case:
    labels = s.problem.labels.copy()
    labels[[3, 10, 400]] = [7, 9, -1]
    return [s.write_dump(s.problem, labels=labels)], s.tmp_path / "features.h5", "3 labels lie outside 0..6"


def nonfinite_features(s: Setup) -> Case:
    features = s.problem.features.copy()
    features[[0, 5, 6], 2] = np.nan
    features[[100, 990], 0] = np.inf
    features[5, 3] = -np.inf  # a row with both counts once
    dump = s.write_dump(s.problem, feature_dtype=np.float32, features=features)
    return [dump], dump, "5 of 991 feature rows hold NaN or Inf"


def head_dimension_mismatch(s: Setup) -> Case:
    narrow = Problem(s.problem.features[:, :10], s.problem.labels, s.problem.W, s.problem.b)
    dump = s.write_dump(narrow, head=False)
    return (
        [s.checkpoint(), "--features", dump, "--head", "fc"],
        dump,
        "features have dimension 10 but the head 'fc' expects 12",
    )


def dump_head_dimension_mismatch(s: Setup) -> Case:
    wide_head = Problem(s.problem.features, s.problem.labels, np.ones((7, 16)), s.problem.b)
    dump = s.write_dump(wide_head)
    return [dump], dump, "features have dimension 12 but the head 'head' expects 16"


def not_a_checkpoint(s: Setup) -> Case:
    path = s.tmp_path / "notes.pt"
    path.write_text("hello, this is not a checkpoint\n")
    return (
        [path, "--features", s.write_dump(s.problem, head=False)],
        path,
        "not a readable PyTorch checkpoint",
    )


def nonfinite_head(s: Setup) -> Case:
    """A diverged run: the head holds NaN weights."""
    state = backbone_state(s.problem)
    state["fc.weight"][2, 3] = float("nan")
    path = s.write_checkpoint(state, "diverged.pt")
    return [path, "--features", s.write_dump(s.problem, head=False)], path, "NaN"


def one_class(s: Setup) -> Case:
    dump = s.write_dump(s.problem, labels=np.zeros_like(s.problem.labels))
    return [dump], dump, "only 1 class present"


def empty_dump(s: Setup) -> Case:
    dump = s.write_dump(s.problem, features=np.zeros((0, 12)), labels=np.zeros(0))
    return [dump], dump, "the dump is empty"


def no_head(s: Setup) -> Case:
    state = {k: v for k, v in backbone_state(s.problem).items() if k.startswith("encoder")}
    path = s.write_checkpoint(state, "encoder_only.pt")
    return (
        [path, "--features", s.write_dump(s.problem, head=False)],
        path,
        "no classifier head of shape (C, 12)",
    )


def ambiguous_head(s: Setup) -> Case:
    """Two (7, 12) weights, neither with a usual head name, in a safetensors file (keys sorted)."""
    state = {key.replace("fc.", "out."): value for key, value in backbone_state(s.problem).items()}
    state["aux.weight"] = state["out.weight"].clone()
    path = s.write_checkpoint(state, "model.safetensors")
    args: list[str | Path] = [path, "--features", s.write_dump(s.problem, head=False)]
    return args, path, "ambiguous classifier head, candidates aux.weight (7, 12), out.weight (7, 12)"


def checkpoint_without_features(s: Setup) -> Case:
    path = s.checkpoint()
    return [path], path, "a checkpoint needs features: pass --features"


def unknown_split(s: Setup) -> Case:
    dump = s.write_dump(s.problem, split="train")
    return [dump, "--split", "val"], dump, "no split 'val'; splits in the file: train"


def dump_without_head(s: Setup) -> Case:
    dump = s.write_dump(s.problem, head=False)
    return [dump], dump, "holds no /head/weight"


def integer_features(s: Setup) -> Case:
    dump = s.write_dump(s.problem, feature_dtype=np.int32)
    return [dump], dump, "/features must be float16/32/64"


def row_count_mismatch(s: Setup) -> Case:
    dump = s.write_dump(s.problem, labels=s.problem.labels[:-1])
    return [dump], dump, "/features has 991 rows but /labels has 990"


BAD_INPUTS: list[BadCase] = [
    missing_checkpoint, missing_dump, pickle_that_runs_code, not_a_checkpoint, truncated_dump, not_hdf5,
    labels_out_of_range, nonfinite_features, head_dimension_mismatch, dump_head_dimension_mismatch,
    nonfinite_head, one_class, empty_dump, no_head, ambiguous_head, dump_without_head,
    checkpoint_without_features, unknown_split, integer_features, row_count_mismatch,
]  # fmt: skip


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case.__name__ for case in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line_naming_the_file(
    case: BadCase,
    tmp_path: Path,
    random_problem: Problem,
    write_dump: DumpWriter,
    write_checkpoint: CheckpointWriter,
) -> None:
    args, culprit, fragment = case(Setup(tmp_path, random_problem, write_dump, write_checkpoint))
    report_path = tmp_path / "report.json"

    result = invoke(*args, "--json", report_path)

    assert_bad_input(result, culprit, fragment)
    assert not report_path.exists()  # nothing written for a bad input
    assert not (tmp_path / "pwned").exists()  # and nothing executed


def test_the_split_in_an_error_line_is_printed_verbatim(
    random_problem: Problem, write_dump: DumpWriter
) -> None:
    """The error names '<dump> [train]'; brackets in a message are text, not Rich markup."""
    labels = random_problem.labels.copy()
    labels[0] = 9
    dump = write_dump(random_problem, "split.h5", split="train", labels=labels)
    line = assert_bad_input(invoke(dump), dump, "1 labels lie outside 0..6")
    assert f"{dump} [train]: 1 labels" in line


def test_a_path_that_looks_like_a_closing_markup_tag_is_still_one_error_line(tmp_path: Path) -> None:
    """A missing 'runs[/x].h5' (directory 'runs[') is exit 2 with one line, not a MarkupError traceback."""
    (tmp_path / "runs[").mkdir()
    odd = tmp_path / "runs[" / "x].h5"
    line = assert_bad_input(invoke(odd), odd, "no such feature dump")
    assert str(odd) in line


def test_table_header_shows_a_bracketed_path_verbatim(
    random_problem: Problem, write_dump: DumpWriter
) -> None:
    dump = write_dump(random_problem, "sweep[lr=0.1].h5")
    result = invoke(Path(dump.name), "--no-progress")  # relative: the header line stays short
    assert result.exit_code == 0, result.output
    assert "sweep[lr=0.1].h5" in result.stdout


# --- the installed entry points -------------------------------------------------------------------------
def console_script() -> str:
    found = shutil.which("nc-audit", path=str(Path(sys.prefix) / "bin")) or shutil.which("nc-audit")
    assert found, "the nc-audit console script is not installed in this environment"
    return found


def run(command: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("GITHUB_STEP_SUMMARY", "NC_AUDIT_DEBUG")
    }
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_console_script_exits_0_on_success_and_2_on_bad_input(tmp_path: Path, random_dump: Path) -> None:
    script = console_script()
    ok = run([script, "measure", random_dump, "--format", "json"], tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["schema"] == "nc-audit-report/1"

    bad = run([script, "measure", tmp_path / "missing.h5"], tmp_path)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr + bad.stdout
    assert [line for line in bad.stderr.splitlines() if line.strip()] == [
        f"nc-audit: error: {tmp_path / 'missing.h5'}: no such feature dump"
    ]


@pytest.mark.slow  # a CLI subprocess (the console script test runs in make test)
def test_python_dash_m_runs_the_same_cli(tmp_path: Path) -> None:
    problem = make_random_problem(seed=3, num_classes=4, feature_dim=5)
    with_head = tmp_path / "small.h5"
    with h5py.File(with_head, "w") as handle:
        handle["features"], handle["labels"] = problem.features, problem.labels
        handle["head/weight"], handle["head/bias"] = problem.W, problem.b
    done = run([sys.executable, "-m", "nc_audit", "measure", with_head, "--format", "json"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["features"]["num_classes"] == 4
