"""`nc-audit demo grokking` on a shortened schedule: files, steps, and a SUMMARY that matches the data."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from nc_audit.cli.demo import demo_app
from nc_audit.core.formats import GROKKING_SCHEMA
from nc_audit.experiments.grokking import THRESHOLD, first_step, window_change
from nc_audit.experiments.grokking_train import save_steps
from nc_audit.io.checkpoints.load import load_checkpoint

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("grok") / "demo"
    app = typer.Typer()
    app.add_typer(demo_app, name="demo")
    args = ["demo", "grokking", "--out", str(out), "--p", "23", "--steps", "300", "--save-every", "100"]
    result = CliRunner().invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "train accuracy ≥ 0.99" in result.stderr and "time: training" in result.stderr
    return out


def test_files_and_checkpoints(run: Path) -> None:
    assert (run / "grokking.png").read_bytes().startswith(PNG_MAGIC)
    assert sorted(p.name for p in run.glob("step_*.pt")) == [f"step_{s:05d}.pt" for s in (0, 100, 200, 300)]
    checkpoint = load_checkpoint(run / "step_00200.pt")
    assert checkpoint.step == 200 and checkpoint.architecture["name"] == "modmlp"
    metrics = checkpoint.meta["metrics"]
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["train_loss"] > 0 and metrics["step"] == 200


def test_trajectory_holds_both_splits_at_every_saved_step(run: Path) -> None:
    document = json.loads((run / "trajectory.json").read_text())
    assert document["schema"] == GROKKING_SCHEMA
    assert document["steps"] == [0, 100, 200, 300]
    for split in ("train", "test"):
        records = document[split]["records"]
        assert [r["step"] for r in records] == [0, 100, 200, 300]
        assert {r["features"]["split"] for r in records} == {split}
        assert all(r["features"]["num_classes"] == 23 and r["metrics"]["mir"] is not None for r in records)
    assert all("own_class_means" in r["details"] for r in document["test"]["records"])
    history_acc = [h["train_accuracy"] for h in document["history"]]
    measured_acc = [r["details"]["accuracy"] for r in document["train"]["records"]]
    assert measured_acc == pytest.approx(history_acc, abs=2 / 211)  # the loop (float32) vs measure (float64)


def summary_step(summary: str, split: str) -> int | None:
    """The step SUMMARY.md states for ``split``, or None when it says the threshold was never reached."""
    found = re.search(rf"- {split} accuracy first ≥ {THRESHOLD} at step \*\*(\d+)\*\*", summary)
    if found:
        return int(found.group(1))
    assert re.search(rf"- {split} accuracy: never reached ≥ {THRESHOLD}", summary), summary
    return None


def test_summary_numbers_come_from_the_measurement(run: Path) -> None:
    document = json.loads((run / "trajectory.json").read_text())
    summary = (run / "SUMMARY.md").read_text()
    steps = document["steps"]
    for split in ("train", "test"):
        accuracy = [r["details"]["accuracy"] for r in document[split]["records"]]
        expected = next((s for s, a in zip(steps, accuracy, strict=True) if a >= THRESHOLD), None)
        assert summary_step(summary, split) == expected == document["events"][f"{split}_accuracy_step"]
    mir = [r["metrics"]["mir"] for r in document["train"]["records"]]
    event = document["events"]["train_accuracy_step"]
    if event is not None:
        i = steps.index(event)
        window = mir[max(i - 2, 0) : min(i + 2, len(steps) - 1) + 1]
        change = sum(abs(later - earlier) for earlier, later in itertools.pairwise(window))
        row = next(line for line in summary.splitlines() if line.startswith("| mir (train features)"))
        assert f"{change:.4f}" in row.split("|")[2]
        stored = document["events"]["changes"]["mir (train features)"]["around_train_event"]["change"]
        assert stored == pytest.approx(change, abs=1e-12)
    assert re.search(r"Time: training [\d.]+ s, measurement [\d.]+ s, total [\d.]+ s", summary)


def test_event_statistics() -> None:
    steps = [0, 100, 200, 300, 400, 500]
    assert save_steps(450, 100) == [0, 100, 200, 300, 400, 450]
    assert first_step(steps, [0.1, 0.5, None, 0.99, 1.0, 1.0]) == 300
    assert first_step(steps, [0.1] * 6) is None
    values = [0.0, 1.0, 3.0, 6.0, 10.0, 15.0]
    assert window_change(steps, values, 200) == {"from_step": 0, "to_step": 400, "change": 10.0}
    assert window_change(steps, values, 500) == {"from_step": 300, "to_step": 500, "change": 9.0}
    peak = [0.0, 0.0, 1.0, 3.0, 1.0, 0.0]  # rises and falls back: total variation, not net change
    assert window_change(steps, peak, 300)["change"] == 6.0
    assert window_change(steps, [0.0, None, 1.0, 1.0, 1.0, 1.0], 100)["change"] is None
    assert window_change(steps, values, None) is None


# --- the transformer ----------------------------------------------------------------------------------------
def grok(out: Path, *args: str) -> None:
    app = typer.Typer()
    app.add_typer(demo_app, name="demo")
    result = CliRunner().invoke(
        app, ["demo", "grokking", "--out", str(out), *args, "--threads", "1", "--no-progress"]
    )
    assert result.exit_code == 0, (result.output, result.exception)


@pytest.mark.slow  # trains the transformer
def test_transformer_quick_run_has_the_same_outputs(tmp_path: Path) -> None:
    out = tmp_path / "transformer"
    grok(out, "--model", "transformer", "--quick", "--steps", "200")
    document = json.loads((out / "trajectory.json").read_text())
    assert document["config"]["model"] == {"name": "transformer", "d_model": 64, "heads": 4, "d_mlp": 256}
    assert document["steps"] == [0, 100, 200] and document["config"]["p"] == 23
    checkpoint = load_checkpoint(out / "step_00200.pt")
    assert checkpoint.architecture["name"] == "transformer" and checkpoint.architecture["head"] == "head"
    assert "head.bias" not in checkpoint.state_dict  # the unembedding has no bias
    records = document["train"]["records"]
    assert all(r["features"]["num_classes"] == 23 and r["features"]["feature_dim"] == 64 for r in records)
    assert (out / "grokking.png").read_bytes().startswith(PNG_MAGIC)
    assert "transformer (d_model 64, heads 4, d_mlp 256)" in (out / "SUMMARY.md").read_text()


@pytest.mark.slow  # two short training runs, one interrupted
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path: Path) -> None:
    """Train 100 steps, resume to 200: the same step files and weights as 200 steps in one go."""
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    common = ("--model", "transformer", "--p", "11", "--save-every", "50")
    grok(whole, *common, "--steps", "200")
    grok(parts, *common, "--steps", "100")
    grok(parts, *common, "--steps", "200", "--resume")
    names = sorted(p.name for p in whole.glob("step_*.pt"))
    assert names == sorted(p.name for p in parts.glob("step_*.pt")) and len(names) == 5
    for name in names:
        a, b = load_checkpoint(whole / name), load_checkpoint(parts / name)
        for key, value in a.state_dict.items():
            assert torch.equal(value, b.state_dict[key]), (name, key)
    history = [json.loads((d / "trajectory.json").read_text())["history"] for d in (whole, parts)]
    assert history[0] == history[1]
    app = typer.Typer()
    app.add_typer(demo_app, name="demo")
    other = CliRunner().invoke(app, ["demo", "grokking", "--out", str(parts), *common, "--steps", "200",
                                     "--resume", "--seed", "1", "--no-progress"])  # fmt: skip
    assert other.exit_code == 2 and "settings differ" in other.stderr and "seed 0 → 1" in other.stderr
