"""Monitor: report records from a training loop, appended crash-safely to a .jsonl trajectory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_random_problem
from reference import ALL_KEYS, Problem, reference_metrics, relative_difference

from nc_audit.core.errors import InputError
from nc_audit.core.formats import REPORT_SCHEMA
from nc_audit.measurement.monitor import Monitor, TruncatedLineWarning, read_trajectory_jsonl
from nc_audit.metrics.information import nc_targets

ROOT = Path(__file__).resolve().parents[2]


def problem_tensors(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features (N, 12) float32 with grad, labels (N,), head W (7, 12), b (7,) as a training loop has them."""
    problem = make_random_problem(seed=seed)
    H = torch.tensor(problem.features, dtype=torch.float32, requires_grad=True)  # (N, d)
    W = torch.tensor(problem.W, dtype=torch.float32, requires_grad=True)  # (C, d)
    b = torch.tensor(problem.b, dtype=torch.float32, requires_grad=True)  # (C,)
    return H, torch.from_numpy(problem.labels), W, b


def test_record_holds_the_reference_metrics_of_the_batch(tmp_path: Path) -> None:
    """Every class-level metric of the logged batch equals the plain float64 NumPy reference of
    docs/METRICS.md (tests/reference.py, written without nc_audit), the float32 inputs upcast exactly."""
    H, y, W, b = problem_tensors()
    monitor = Monitor(tmp_path / "run.jsonl", every=1, label="run-a")
    record = monitor.log(5, H, y, W, b, loss=torch.tensor(0.25), lr=1e-3)
    as64 = Problem(
        H.detach().double().numpy(), y.numpy(), W.detach().double().numpy(), b.detach().double().numpy()
    )
    expected = reference_metrics(as64.features, as64.labels, as64.W, as64.b)
    assert record is not None
    for key in ALL_KEYS:
        assert relative_difference(record["metrics"][key], expected[key]) <= 1e-10, key
    logits = as64.features @ as64.W.T + as64.b  # (N, C)
    assert record["metrics"]["accuracy"] == pytest.approx(float((logits.argmax(1) == as64.labels).mean()))
    assert record["metrics"]["loss"] == 0.25 and record["metrics"]["lr"] == 1e-3
    assert record["schema"] == REPORT_SCHEMA and record["step"] == 5 and record["label"] == "run-a"
    assert record["checkpoint"] == {"path": None, "sha256": None, "head": "monitor"}
    assert record["features"] == {
        "path": None, "split": "batch", "num_samples": len(y), "feature_dim": 12, "num_classes": 7,
        "means_split": "batch", "means_samples": len(y), "dtype": "float32",
    }  # fmt: skip
    assert record["conventions"]["means_split"] == record["conventions"]["decisions_split"] == "batch"
    assert record["targets"] == nc_targets(7)
    assert record["checks"] == [] and record["passed"] is True
    assert read_trajectory_jsonl(tmp_path / "run.jsonl") == [record]


def test_a_record_without_a_run_label_is_labelled_by_its_step_and_never_shows_none(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nc_audit.cli import app

    H, y, W, b = problem_tensors()
    path = tmp_path / "run.jsonl"
    monitor = Monitor(path, every=10)
    for step in (0, 10):
        monitor.log(step, H, y, W, b)
    assert [record["label"] for record in read_trajectory_jsonl(path)] == ["step 0", "step 10"]
    legacy = tmp_path / "legacy.jsonl"  # written before labels defaulted to the step
    legacy.write_text("".join(line.replace('"label":"step 0"', '"label":null') + "\n" for line in path.read_text().splitlines()))  # fmt: skip
    for source in (path, legacy):
        result = CliRunner().invoke(
            app, ["track", str(source), "--fail-on", "nc1<=1e9", "--gate", "all", "-q"]
        )
        assert result.exit_code == 0, result.output
        assert "None" not in result.stdout and "step 10" in result.stdout


def test_every_k_counts_steps_not_calls(tmp_path: Path) -> None:
    H, y, W, b = problem_tensors()
    path = tmp_path / "run.jsonl"
    monitor = Monitor(path, every=3)
    returned = [monitor.log(step, H, y, W, b) is not None for step in range(8)]
    assert returned == [True, False, False, True, False, False, True, False]
    assert [r["step"] for r in read_trajectory_jsonl(path)] == [0, 3, 6]
    Monitor(path, every=3).log(9, H, y, W)  # a resumed run appends; no bias is allowed
    assert [r["step"] for r in read_trajectory_jsonl(path)] == [0, 3, 6, 9]
    Monitor(path, every=3, append=False).log(12, H, y, W, b)
    assert [r["step"] for r in read_trajectory_jsonl(path)] == [12]


def test_truncated_last_line_is_skipped_and_cut_on_resume(tmp_path: Path) -> None:
    H, y, W, b = problem_tensors()
    path = tmp_path / "run.jsonl"
    monitor = Monitor(path, every=1)
    monitor.log(0, H, y, W, b)
    monitor.log(1, H, y, W, b)
    whole = path.read_bytes()
    path.write_bytes(whole + whole.splitlines()[0][:57])  # a third write killed half-way
    with pytest.warns(TruncatedLineWarning, match="line 3"):
        assert [r["step"] for r in read_trajectory_jsonl(path)] == [0, 1]
    with pytest.warns(TruncatedLineWarning, match="truncated last line"):
        resumed = Monitor(path, every=1)
    assert path.read_bytes() == whole
    resumed.log(2, H, y, W, b)
    assert [r["step"] for r in read_trajectory_jsonl(path)] == [0, 1, 2]


def test_malformed_line_before_the_end_is_an_error(tmp_path: Path) -> None:
    H, y, W, b = problem_tensors()
    path = tmp_path / "run.jsonl"
    Monitor(path).log(0, H, y, W, b)
    good = path.read_text()
    path.write_text("{not json\n" + good)
    with pytest.raises(InputError, match=r"run\.jsonl: line 1 is not valid JSON"):
        read_trajectory_jsonl(path)
    path.write_text(json.dumps({"schema": "something/else"}) + "\n" + good)
    with pytest.raises(InputError, match="line 1 is not a report record"):
        read_trajectory_jsonl(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"every": 0}, "every=0 must be a positive integer"),
        ({"num_classes": 5}, "num_classes=5 but head_weight has 7 rows"),
        ({"labels": "bad"}, r"labels must lie in 0\.\.6"),
        ({"extra": {"nc1": 1.0}}, "would overwrite"),
        ({"extra": {"loss": "high"}}, "is not a number"),
        ({"features": "transposed"}, "expected features"),
    ],
)
def test_bad_input(tmp_path: Path, change: dict, message: str) -> None:
    H, y, W, b = problem_tensors()
    with pytest.raises(InputError, match=message):
        monitor = Monitor(
            tmp_path / "run.jsonl", every=change.get("every", 1), num_classes=change.get("num_classes")
        )
        labels = y + 7 if change.get("labels") else y
        features = H.T if change.get("features") else H
        monitor.log(0, features, labels, W, b, **change.get("extra", {}))
    assert not (tmp_path / "run.jsonl").exists() or read_trajectory_jsonl(tmp_path / "run.jsonl") == []


@pytest.mark.slow  # trains the example script
def test_example_runs_and_track_reads_it(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "monitor.jsonl"
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "monitor_training.py"), "--steps", "40", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert f"nc-audit track {out}" in result.stdout
    records = read_trajectory_jsonl(out)
    assert [r["step"] for r in records] == [0, 20, 40]
    assert all(r["label"] == "digits-mlp" and r["features"]["num_classes"] == 10 for r in records)
    assert all(set(r["metrics"]) >= {"nc1", "mir", "hdr", "accuracy", "loss"} for r in records)
