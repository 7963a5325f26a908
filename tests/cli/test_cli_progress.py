"""Progress and CI logs: without a terminal, one plain line at most every few seconds; --quiet (and its old
name --no-progress) silences it; under GitHub Actions each checkpoint of `track` sits in its own group.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import mlp_checkpoint
from runs import write_monitor_file, write_run
from typer.testing import CliRunner

from nc_audit.cli import app
from nc_audit.cli.progress import PlainTracker, RichTracker, make_tracker, progress_line
from nc_audit.core.progress import SilentTracker
from nc_audit.report.github import command_value

pytestmark = pytest.mark.usefixtures("isolated_cli")
LINE = re.compile(r"^extract train \d+% [\d,]+/1,347 rows \d+\.\d s$")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_come_at_most_once_per_interval_and_each_seen_stage_shows_its_end() -> None:
    clock, out = Clock(), io.StringIO()
    tracker = PlainTracker(out, interval=5.0, clock=clock)
    with tracker.stage("extract train", 13470, unit="rows") as advance:
        for _ in range(10):  # 10 × 539 rows, one every second
            clock.now += 1.0
            advance(539)
    assert out.getvalue().splitlines() == [
        "extract train 20% 2,695/13,470 rows 5.0 s",
        "extract train 40% 5,390/13,470 rows 10.0 s",
    ]
    with tracker.stage("statistics", None, unit="rows") as advance:
        clock.now += 6.0
        advance(1000)
        advance(500)  # the closing line shows where it ended
    assert out.getvalue().splitlines()[2:] == ["statistics 1,000 rows 6.0 s", "statistics 1,500 rows 6.0 s"]


def test_quick_work_prints_nothing() -> None:
    clock, out = Clock(), io.StringIO()
    with PlainTracker(out, interval=5.0, clock=clock).stage("decisions", 100, unit="rows") as advance:
        clock.now += 4.9
        advance(100)
    assert out.getvalue() == ""


def test_a_progress_line_is_one_line_whatever_the_name() -> None:
    assert progress_line("extract\nx\x1b[2J", 1, 2, "rows", 0.04) == "extract\\nx\\x1b[2J 50% 1/2 rows 0.0 s"


def test_the_tracker_follows_the_terminal_and_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(make_tracker(quiet=True), SilentTracker)
    assert isinstance(make_tracker(enabled=False), SilentTracker)
    assert isinstance(make_tracker(), PlainTracker)  # pytest's stderr is no terminal
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("TTY_INTERACTIVE", "1")
    assert isinstance(make_tracker(), RichTracker)


def extract(tmp_path: Path, *flags: str, interval: str = "0") -> tuple[int, str]:
    """`nc-audit extract` on digits in a subprocess whose stderr is a file (as in a CI log)."""
    checkpoint = mlp_checkpoint(tmp_path / "init.pt")
    log = tmp_path / "log.txt"
    command = [sys.executable, "-m", "nc_audit", "extract", str(checkpoint), "--data", "digits", "--split",
               "train", "--out", str(tmp_path / "out.h5"), "--batch-size", "256", "--device", "cpu", *flags]  # fmt: skip
    env = {"NC_AUDIT_PROGRESS_INTERVAL": interval, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    with log.open("w") as handle:
        code = subprocess.run(
            command, stdout=subprocess.DEVNULL, stderr=handle, env=env, timeout=300
        ).returncode
    return code, log.read_text()


@pytest.mark.slow  # a real training run logged to a file
def test_a_log_without_a_terminal_gets_plain_progress_lines(tmp_path: Path) -> None:
    code, log = extract(tmp_path)
    assert code == 0, log
    lines = [line for line in log.splitlines() if line.startswith("extract")]
    assert len(lines) >= 2 and all(LINE.match(line) for line in lines), log
    assert lines[-1].startswith("extract train 100% 1,347/1,347 rows")
    assert "\x1b" not in log and "\r" not in log  # no bar drawing in a log


@pytest.mark.parametrize(
    "flag",
    [
        "--quiet",
        pytest.param("-q", marks=pytest.mark.slow),
        pytest.param("--no-progress", marks=pytest.mark.slow),
    ],
)
def test_quiet_and_no_progress_silence_it(tmp_path: Path, flag: str) -> None:
    code, log = extract(tmp_path, flag)
    assert code == 0
    assert log.splitlines() == [f"wrote {tmp_path / 'out.h5'}"]


# --- GitHub Actions groups ---------------------------------------------------------------------------------
def test_track_groups_each_checkpoint_under_github_actions(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", {"epoch_1": 0.9, "epoch_2": 0.3})
    env = {"GITHUB_ACTIONS": "true", "COLUMNS": "120"}

    result = CliRunner().invoke(
        app, ["track", str(run), "-q", "--device", "cpu", "--fail-on", "nc1<=1"], env=env
    )

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    opened = [i for i, line in enumerate(lines) if line.startswith("::group::")]
    closed = [i for i, line in enumerate(lines) if line == "::endgroup::"]
    assert [lines[i] for i in opened] == [
        "::group::nc-audit epoch_1.pt (step 1)",
        "::group::nc-audit epoch_2.pt (step 2): 1 checks passed",
    ]
    assert len(closed) == 2 and opened[0] < closed[0] < opened[1] < closed[1]
    for start, end in zip(opened, closed, strict=True):
        body = lines[start + 1 : end]
        token = re.fullmatch(r"::stop-commands::([0-9a-f]{32})", body[0]).group(1)
        assert body[-1] == f"::{token}::"  # workflow commands off inside: a name cannot inject one
        assert any(line.startswith("checkpoint ") for line in body) and any("nc1 " in line for line in body)
    assert "trajectory" in "\n".join(lines[closed[-1] :])  # the summary table follows the groups

    plain = CliRunner().invoke(app, ["track", str(run), "-q", "--device", "cpu"], env={"GITHUB_ACTIONS": ""})
    assert "::group::" not in plain.stdout


def test_json_on_stdout_stays_pure_under_github_actions(tmp_path: Path) -> None:
    write_monitor_file(tmp_path / "run.jsonl")
    result = CliRunner().invoke(app, ["track", str(tmp_path / "run.jsonl"), "--format", "json"], env={"GITHUB_ACTIONS": "true"})  # fmt: skip
    assert result.exit_code == 0 and result.stdout.startswith("{") and "::group::" not in result.stdout


def test_group_titles_cannot_break_out_of_their_line() -> None:
    assert command_value("a\n::error::x%\r") == "a%0A::error::x%25%0D"
