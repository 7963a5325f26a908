"""`nc-audit study label-smoothing|semi-supervised` in --quick mode end to end, and the resumable records every
study keeps (DIR/study.json + DIR/runs.jsonl): a killed study resumes where it stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from nc_audit.cli import app
from nc_audit.core.errors import InputError
from nc_audit.core.formats import STUDY_RESULTS_SCHEMA
from nc_audit.core.progress import SilentTracker
from nc_audit.experiments.studies.label_smoothing import LabelSmoothingStudy, run_label_smoothing
from nc_audit.experiments.studies.records import Run, StudyRecords, run_study
from nc_audit.experiments.studies.summary import mean_std, summarise
from nc_audit.train.recipe import Recipe

pytestmark = pytest.mark.usefixtures("one_thread", "isolated_cli")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def invoke(*args: str | Path) -> Result:
    """`nc-audit ARGS` in-process without a progress bar (the studies train on the CPU)."""
    return CliRunner().invoke(app, [*map(str, args), "--no-progress"])


def run_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("[")]


def test_label_smoothing_quick_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "ls"
    result = invoke("study", "label-smoothing", "--quick", "--out", out, "--plot", tmp_path / "ls.png")
    assert result.exit_code == 0, result.output
    table = result.stdout.splitlines()
    assert table[0] == "| ε | test accuracy | NC1 | MIR | HDR | train accuracy | NC4 |"
    assert [row.split(" | ")[0] for row in table[2:]] == ["| 0", "| 0.1"]
    assert len(run_lines(result.stderr)) == 2 and "ε=0.1 seed 0: test accuracy" in result.stderr
    document = json.loads((out / "results.json").read_text())
    assert document["schema"] == STUDY_RESULTS_SCHEMA and document["kind"] == "label-smoothing"
    assert [(r["epsilon"], r["seed"]) for r in document["records"]] == [(0.0, 0), (0.1, 0)]
    for record in document["records"]:
        assert Path(record["checkpoint"]).is_file() and 0 <= record["test"]["accuracy"] <= 1
        assert record["train"]["metrics"]["mir"] is not None
    row = document["summary"][1]
    assert (
        row["epsilon"] == 0.1 and row["test_accuracy"]["mean"] == document["records"][1]["test"]["accuracy"]
    )
    assert (tmp_path / "ls.png").read_bytes().startswith(PNG_MAGIC)
    assert "| 0.1 |" in (out / "RESULTS.md").read_text()
    assert len((out / "runs.jsonl").read_text().splitlines()) == 2


def test_label_smoothing_changes_the_training_and_the_run_is_measurable(tmp_path: Path) -> None:
    """The two runs differ only in ε; their checkpoints measure like the study says."""
    from nc_audit.measurement.api import measure

    study = LabelSmoothingStudy.quick()
    document = run_label_smoothing(tmp_path / "ls", study)
    plain, smoothed = document["records"]
    assert plain["train"]["metrics"]["nc1"] != smoothed["train"]["metrics"]["nc1"]
    report = measure(smoothed["checkpoint"], data="digits", cache_dir=tmp_path / "cache", device="cpu")
    for key in ("nc1", "mir", "hdr"):
        assert report.metrics[key] == pytest.approx(smoothed["train"]["metrics"][key], rel=1e-9, abs=1e-12)


def test_semi_supervised_quick_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "ss"
    result = invoke("study", "semi-supervised", "--quick", "--out", out)
    assert result.exit_code == 0, result.output
    table = result.stdout.splitlines()
    assert table[0].startswith("| labels/class | setting | test accuracy | confident share |")
    assert [row.split(" | ")[1] for row in table[2:]] == ["supervised", "FixMatch λ=0", "FixMatch λ=0.1"]
    document = json.loads((out / "results.json").read_text())
    assert [r["setting"] for r in document["records"]] == ["supervised", "FixMatch λ=0", "FixMatch λ=0.1"]
    supervised, fixmatch, regularised = document["records"]
    assert (
        supervised["stats"]["mask_rate"] is None and fixmatch["stats"]["mask_rate"] > 0
    )  # τ = 0.3 in --quick
    assert (
        fixmatch["test"]["accuracy"] != regularised["test"]["accuracy"]
        or fixmatch["train"] != regularised["train"]
    )
    assert (out / "semi_supervised.png").read_bytes().startswith(PNG_MAGIC)
    assert len(list((out / "runs").glob("*.pt"))) == 3


@pytest.mark.slow  # kills a real study process mid-way and runs it again
def test_a_killed_study_resumes_where_it_stopped(tmp_path: Path) -> None:
    """SIGKILL after the first of three runs; --resume reads it back untouched, runs the other two, and the
    results equal an uninterrupted study's."""
    out = tmp_path / "killed"
    args = [
        "study",
        "label-smoothing",
        "--quick",
        "--epsilons",
        "0,0.05,0.1",
        "--epochs",
        "30",
        "--out",
        str(out),
    ]
    command = [sys.executable, "-m", "nc_audit", *args, "--threads", "1", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    runs_file, deadline = out / "runs.jsonl", time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if runs_file.exists() and len(runs_file.read_text().splitlines()) >= 1:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode() if process.stderr else ""
    first = runs_file.read_text().splitlines()
    assert 1 <= len(first) < 3  # whole records only: the file is rewritten atomically

    resumed = invoke(*args[:-2], "--out", out, "--resume", "--threads", "1")
    assert resumed.exit_code == 0, resumed.output
    told = run_lines(resumed.stderr)
    assert ["read back from runs.jsonl" in line for line in told] == [True] * len(first) + [False] * (
        3 - len(first)
    )
    lines = runs_file.read_text().splitlines()
    assert lines[: len(first)] == first  # not recomputed
    study = LabelSmoothingStudy(
        epsilons=(0.0, 0.05, 0.1), seeds=(0,), hidden=(16, 16), recipe=Recipe(epochs=30)
    )
    uninterrupted = run_label_smoothing(tmp_path / "whole", study)["records"]
    for line, expected in zip(lines, uninterrupted, strict=True):
        record = json.loads(line)
        assert record["train"] == expected["train"] and record["test"] == expected["test"], record["key"]


def test_study_records_refuse_to_mix_studies(tmp_path: Path) -> None:
    out = tmp_path / "s"
    settings = {"seeds": [0, 1], "epochs": 3}
    StudyRecords.open(out, "label-smoothing", settings, resume=False)
    with pytest.raises(InputError, match="already holds a study"):
        StudyRecords.open(out, "label-smoothing", settings, resume=False)
    with pytest.raises(InputError, match=r"settings differ .*epochs 3 → 4"):
        StudyRecords.open(out, "label-smoothing", {**settings, "epochs": 4}, resume=True)
    with pytest.raises(InputError, match="holds a label-smoothing study, not prune"):
        StudyRecords.open(out, "prune", settings, resume=True)
    assert StudyRecords.open(out, "label-smoothing", settings, resume=True).records == {}


def test_run_study_keeps_every_finished_run_and_skips_it_on_resume(tmp_path: Path) -> None:
    calls: list[str] = []

    def work(key: str, fail: bool = False):
        def run(tracker: object) -> dict:
            calls.append(key)
            if fail:
                raise KeyboardInterrupt  # killed in the middle of the second run
            return {"value": len(key)}

        return run

    study = StudyRecords.open(tmp_path / "s", "demo", {}, resume=False)
    runs = [Run("a", "a", work("a")), Run("bb", "bb", work("bb", fail=True)), Run("ccc", "ccc", work("ccc"))]
    with pytest.raises(KeyboardInterrupt):
        run_study(study, runs, SilentTracker())
    (tmp_path / "s" / "runs.jsonl").write_text(
        (tmp_path / "s" / "runs.jsonl").read_text() + '{"key": "bb", "val'
    )
    study = StudyRecords.open(tmp_path / "s", "demo", {}, resume=True)  # a torn last line is ignored, noted
    assert list(study.records) == ["a"] and "line 2" in study.notes[0]
    runs[1] = Run("bb", "bb", work("bb"))
    seen: list[tuple[int, bool]] = []
    records = run_study(study, runs, SilentTracker(), lambda i, n, r, resumed: seen.append((i, resumed)))
    assert calls == ["a", "bb", "bb", "ccc"] and seen == [(1, True), (2, False), (3, False)]
    assert [r["value"] for r in records] == [1, 2, 3] and all("seconds" in r for r in records)


def test_summary_is_mean_and_sample_standard_deviation() -> None:
    assert mean_std([1.0, 2.0, None, 3.0]) == {"mean": 2.0, "std": 1.0, "n": 3}
    assert mean_std([0.5]) == {"mean": 0.5, "std": 0.0, "n": 1} and mean_std([None])["mean"] is None
    records = [{"e": 0.1, "v": 1.0}, {"e": 0.0, "v": 4.0}, {"e": 0.1, "v": 3.0}]
    rows = summarise(records, ["e"], [("v", lambda r: r["v"])])
    assert [(row["e"], row["runs"], row["v"]["mean"]) for row in rows] == [(0.1, 2, 2.0), (0.0, 1, 4.0)]
