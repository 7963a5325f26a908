"""Report renderers (Markdown) and atomic writes (JUnit: test_junit.py, plots: test_plots.py)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest

from nc_audit.core.errors import InputError
from nc_audit.io.guards.atomic import atomic_write_bytes, atomic_write_text
from nc_audit.report.markdown import append_step_summary
from nc_audit.report.markdown import render_markdown as render_typed
from nc_audit.report.markdown import render_trajectory_markdown as render_trajectory_typed
from nc_audit.report.model import Report, Trajectory

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_report(
    label: str, nc1: float, mir: float | None, checks: list[dict[str, Any]], step: int | None
) -> dict[str, Any]:
    """A trajectory record (nc-audit-report/1 plus step and label) for C = 10."""
    metrics = {"nc1": nc1, "nc1_cdnv": nc1 / 3, "nc2_equinorm_means": 0.1, "nc2_equiangular_means": 0.05,
               "nc3": 0.2, "nc4": 0.01, "h_head": 2.0, "h_means": 2.1, "mi": 0.7, "mir": mir, "hdr": 0.02,
               "acc_train": 0.99}  # fmt: skip
    targets = {key: 0.0 for key in metrics if key.startswith("nc") or key == "hdr"}
    targets.update(h_head=math.log(9), h_means=math.log(9), mi=1.9, mir=0.952351)
    return {
        "schema": "nc-audit-report/1",
        "nc_audit_version": "0.1.0",
        "checkpoint": {"path": f"runs/{label}.pt", "sha256": "0123456789abcdef" * 4, "head": "fc"},
        "features": {
            "path": "d.h5",
            "split": "train",
            "num_samples": 500,
            "feature_dim": 32,
            "num_classes": 10,
        },
        "conventions": {"global_mean": "sample-weighted", "nc4_bias": True, "std": "population"},
        "metrics": metrics,
        "targets": targets,
        "notes": ["MIR is undefined here | for a reason"] if mir is None else [],
        "checks": checks,
        "passed": all(check["passed"] for check in checks),
        "step": step,
        "label": label,
    }


def make_trajectory() -> dict[str, Any]:
    records = [
        make_report("epoch_1", 2.0, 0.5, [{"rule": "nc1 <= 0.5", "value": 2.0, "passed": False},
                                          {"rule": "mir >= 0.9", "value": 0.5, "passed": False}], 1),
        make_report("epoch_5", 0.4, None, [{"rule": "nc1 <= 0.5", "value": 0.4, "passed": True},
                                           {"rule": "mir >= 0.9", "value": None, "passed": False, "reason": "undefined"}], 5),
        make_report("epoch_9", 0.05, 0.93, [{"rule": "nc1 <= 0.5", "value": 0.05, "passed": True},
                                            {"rule": "mir >= 0.9", "value": 0.93, "passed": True}], 9),
    ]  # fmt: skip
    return {"schema": "nc-audit-trajectory/1", "nc_audit_version": "0.1.0", "records": records}


def render_markdown(report: dict[str, Any]) -> str:
    return render_typed(Report.from_dict(report, "run.json"))


def render_trajectory_markdown(trajectory: dict[str, Any]) -> str:
    return render_trajectory_typed(Trajectory.from_dict(trajectory, "run.json"))


# --- Markdown ------------------------------------------------------------------------------------------


def test_markdown_lists_every_metric_target_distance_and_the_verdict() -> None:
    report = make_trajectory()["records"][0]
    text = render_markdown(report)
    for key in report["metrics"]:
        assert f"| {key} |" in text
    assert "| nc1 | 2 | 0 | 2 |" in text
    assert "| mir | 0.5 | 0.9524 | 0.4524 |" in text
    assert "| acc_train | 0.99 | — | — |" in text
    assert "Conventions: global_mean = sample-weighted · nc4_bias = true · std = population" in text
    assert "❌ | nc1 <= 0.5 | 2" in text
    assert "**Verdict: ❌ failed** (0 of 2 checks passed)" in text
    assert "`epoch_1`" in text


def test_markdown_escapes_pipes_and_shows_undefined_values() -> None:
    report = make_trajectory()["records"][1]
    text = render_markdown(report)
    assert "| mir | — | 0.9524 | — |" in text
    assert "- MIR is undefined here | for a reason" in text


def test_trajectory_markdown_has_one_row_per_checkpoint() -> None:
    text = render_trajectory_markdown(make_trajectory())
    rows = [line for line in text.splitlines() if line.startswith("| `epoch_")]
    assert len(rows) == 3
    header = next(line for line in text.splitlines() if line.startswith("| checkpoint |"))
    assert (
        header.startswith("| checkpoint | step | nc1 | nc1_cdnv |")
        and "| mir | hdr | acc_train | checks |" in header
    )
    assert "| NC target |  | 0 | 0 |" in text
    assert "| `epoch_5` | 5 | 0.4 |" in text
    assert "**Failed checks**" in text
    assert "**Verdict: ❌ failed** (3 of 6 checks passed)" in text


def test_step_summary_is_appended_not_overwritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    append_step_summary("## first")
    append_step_summary("## second\n")
    assert summary.read_text(encoding="utf-8") == "# earlier step\n## first\n## second\n"
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    append_step_summary("## ignored")  # no variable: nothing written, no error
    assert "ignored" not in summary.read_text(encoding="utf-8")


# --- atomic writes ------------------------------------------------------------------------------------------


def test_atomic_write_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new ✅")
    assert path.read_text(encoding="utf-8") == "new ✅"
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_atomic_write_leaves_the_old_file_when_writing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "report.json"
    path.write_text("old", encoding="utf-8")

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(InputError, match="no space left on the device"):
        atomic_write_text(path, "new content that never lands")
    monkeypatch.undo()

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, b"half")
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_atomic_write_into_a_missing_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot write"):
        atomic_write_text(tmp_path / "no" / "such" / "report.json", "x")
