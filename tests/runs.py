"""Toy training runs and CLI helpers shared by the trajectory and gate tests.

The collapsing toy run: C classes in R^D, fixed class means, within-class noise shrinking with training,
so NC1 and CDNV move as noise² while every other metric stays put.
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import torch
from reference import Problem
from typer.testing import CliRunner, Result

from nc_audit.cli import app
from nc_audit.io.save import save_checkpoint
from nc_audit.measure.monitor import Monitor, read_trajectory_jsonl

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_checkpoints" / "digits-mlp"
#: The collapsing toy run: C classes in R^D, fixed class means, within-class noise shrinking with training.
C, D, PER_CLASS = 5, 8, 40


def invoke(command: str, *args: str | Path, env: dict[str, str] | None = None) -> Result:
    """Run `nc-audit COMMAND ARGS` in-process on the CPU, without a progress bar."""
    argv = [command, *map(str, args), "--no-progress", "--device", "cpu"]
    return CliRunner().invoke(app, argv, env=env)


def assert_bad_input(result: Result, *fragments: str) -> str:
    """Exit 2 with exactly one stderr line 'nc-audit: error: ...' holding each fragment; no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got {result.stderr!r}"
    line = lines[0]
    assert line.startswith("nc-audit: error: "), line
    for fragment in fragments:
        assert fragment in line, line
    assert result.stdout == ""
    return line


def collapsing_problem(noise: float, num_classes: int = C, feature_dim: int = D, seed: int = 0) -> Problem:
    """Features = class mean + noise·Z with Z centred within each class, so the class means do not depend
    on ``noise``: NC1 and CDNV grow as noise², every other metric stays put. The head is the nearest-mean
    classifier (w_c = μ_c, b_c = −‖μ_c‖²/2), so NC4 = 0 at every noise level."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), PER_CLASS)  # (N,)
    means = 3.0 * rng.normal(size=(num_classes, feature_dim)) + 2.0  # (C, d)
    Z = rng.normal(size=(labels.size, feature_dim))  # (N, d)
    for c in range(num_classes):
        Z[labels == c] -= Z[labels == c].mean(axis=0)
    W = means.copy()  # (C, d)
    b = -0.5 * (means * means).sum(axis=1)  # (C,)
    return Problem(means[labels] + noise * Z, labels.astype(np.int64), W, b)


def write_features(path: Path, problem: Problem) -> Path:
    """The minimal dump a user writes with h5py: /features and /labels only."""
    with h5py.File(path, "w") as handle:
        handle["features"] = problem.features
        handle["labels"] = problem.labels
    return path


def write_head_checkpoint(path: Path, problem: Problem, step: int | None) -> Path:
    """A checkpoint holding only the head 'fc' (+ the step when given), its feature dump beside it."""
    state = {"fc.weight": torch.from_numpy(problem.W.copy()), "fc.bias": torch.from_numpy(problem.b.copy())}
    save_checkpoint(path, state, None, meta=None if step is None else {"step": step})
    write_features(path.with_suffix(".h5"), problem)
    return path


def write_run(folder: Path, noise_by_name: dict[str, float], steps: dict[str, int] | None = None) -> Path:
    """A folder of collapsing-run checkpoints NAME.pt + NAME.h5 (steps optional)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, noise in noise_by_name.items():
        step = None if steps is None else steps[name]
        write_head_checkpoint(folder / f"{name}.pt", collapsing_problem(noise), step)
    return folder


def sample_checkpoints() -> list[Path]:
    """The shipped checkpoints that have their dump, in the order of the epoch number in their name."""
    found = [p for p in SAMPLES.glob("epoch_*.pt") if p.with_suffix(".h5").is_file()]
    assert len(found) >= 3, f"expected the sample trajectory in {SAMPLES}; run `make samples`"
    return sorted(found, key=lambda p: int(re.search(r"(\d+)", p.stem).group(1)))


def write_monitor_file(path: Path, steps: tuple[int, ...] = (0, 10, 20)) -> list[dict]:
    """A monitor's .jsonl: one nc-audit-report/1 record per measured step, noise shrinking with the step."""
    monitor = Monitor(path, every=10, label="toy-run")
    for index, step in enumerate(steps):
        problem = collapsing_problem(1.0 / (index + 1))
        monitor.log(
            step,
            torch.from_numpy(problem.features),
            torch.from_numpy(problem.labels),
            torch.from_numpy(problem.W),
            torch.from_numpy(problem.b),
        )
    return read_trajectory_jsonl(path)
