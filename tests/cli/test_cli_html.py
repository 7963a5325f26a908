"""`--html PATH` of measure, track and finetune: one self-contained file per run, parsed back."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import mlp_checkpoint
from runs import collapsing_problem, invoke, parse_html, write_head_checkpoint, write_run

pytestmark = pytest.mark.usefixtures("isolated_cli")


def test_measure_html_holds_the_report_the_plot_and_the_checks(tmp_path: Path) -> None:
    checkpoint = write_head_checkpoint(tmp_path / "model<b>.pt", collapsing_problem(0.4), step=3)
    html = tmp_path / "out" / "report.html"
    html.parent.mkdir()

    result = invoke("measure", checkpoint, "--features", checkpoint.with_suffix(".h5"), "--fail-on", "nc1<=1e-9", "--html", html)  # fmt: skip

    assert result.exit_code == 1, result.output
    assert f"wrote {html}" in result.stderr
    page = parse_html(html.read_text(encoding="utf-8"))
    assert page.row("checkpoint") == ["checkpoint", str(checkpoint)]  # the "<b>" is text, not markup
    assert not page.named("b")
    assert page.row("nc1")[0] == "nc1" and page.row("mir")[2] != "—"
    assert page.row("✗ FAIL")[1] == "nc1 <= 1e-09"
    assert len(page.named("img")) == 1 and page.row("global_mean")[1] == "sample-weighted"
    assert [p.name for p in html.parent.iterdir()] == ["report.html"]  # one file, nothing beside it


def test_track_html_has_every_checkpoint(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", {"epoch_1": 0.9, "epoch_5": 0.3})
    html = tmp_path / "t.html"

    result = invoke("track", run, "--fail-on", "nc1<=100", "--html", html)

    assert result.exit_code == 0, result.output
    page = parse_html(html.read_text(encoding="utf-8"))
    assert page.row("epoch_1.pt")[1] == "1" and page.row("epoch_5.pt")[1] == "5"
    assert page.row("✓ pass")[1:3] == ["epoch_5.pt", "nc1 <= 100"]
    assert len(page.named("img")) == 1


@pytest.mark.usefixtures("one_thread")
def test_finetune_html_has_before_after_and_history(tmp_path: Path) -> None:
    start = mlp_checkpoint(tmp_path / "init.pt")
    html = tmp_path / "ft.html"

    result = invoke("finetune", start, "--data", "digits", "--cma-weight", "0.1", "--epochs", "1",
                    "--train-samples-per-class", "5", "--out", tmp_path / "run", "--html", html)  # fmt: skip

    assert result.exit_code == 0, result.output
    page = parse_html(html.read_text(encoding="utf-8"))
    assert page.row("NC1")[0] == "NC1" and page.row("train accuracy")[1] != "—"
    assert page.row("cma_weight") == ["cma_weight", "0.1"]
    assert any(row[:1] == ["1"] for row in page.rows)  # the epoch-1 history line
    assert str(tmp_path / "run" / "final.pt") in page.text
