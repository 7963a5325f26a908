"""The shipped sample trajectory: an MLP on digits trained far past 100% training accuracy
(scripts/make_samples.py → sample_checkpoints/digits-mlp/epoch_XXXX.pt + .h5).

What these tests state was measured on the shipped data (C = 10, MIR_NC(10) = 0.952351):
NC1 falls from the first checkpoint to the last, while through the terminal phase (training
accuracy 1.0) MIR stays clearly below its Neural Collapse value and does not approach it: the gap
|MIR − MIR_NC(10)| sits on a plateau near 0.08–0.09. The digits MLP collapses partly, not fully.
"""

from __future__ import annotations

import math
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from nc_audit.measure.api import measure
from nc_audit.measure.trajectory import discover, order_by_step

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_checkpoints" / "digits-mlp"
C = 10
MIR_NC_10 = 1 / (C - 1) + (C - 2) * math.log(C - 2) / ((C - 1) * math.log(C - 1))  # docs/METRICS.md: 0.952351


def epoch(path: Path) -> int:
    return int(re.search(r"(\d+)", path.stem).group(1))


def sample_checkpoints() -> list[Path]:
    """The shipped checkpoints that have their dump, in natural order of their epoch number."""
    return sorted((p for p in SAMPLES.glob("epoch_*.pt") if p.with_suffix(".h5").is_file()), key=epoch)


@dataclass(frozen=True)
class Point:
    epoch: int
    nc1: float
    mir: float
    accuracy: float

    @property
    def mir_gap(self) -> float:
        return abs(self.mir - MIR_NC_10)


@pytest.fixture(scope="module")
def trajectory() -> list[Point]:
    checkpoints = sample_checkpoints()
    assert len(checkpoints) >= 3, f"expected the sample trajectory in {SAMPLES}; run `make samples`"
    points = []
    for checkpoint in checkpoints:
        report = measure(checkpoint, features=checkpoint.with_suffix(".h5"), device="cpu")
        assert report.targets["mir"] == pytest.approx(MIR_NC_10, abs=1e-6)
        m = report.metrics
        points.append(Point(epoch(checkpoint), m["nc1"], m["mir"], report.details["accuracy"]))
    return points


def test_track_orders_the_shipped_checkpoints_by_their_recorded_epoch() -> None:
    """nc-audit's own ordering (the step each checkpoint records) puts the samples in epoch order, and the
    step it reads from each file is the epoch in its name."""
    ordered = order_by_step(discover([SAMPLES]))
    checkpoints = [(path, step) for path, step in ordered if path.suffix == ".pt"]
    assert [path.name for path, _ in checkpoints] == [p.name for p in sample_checkpoints()]
    assert [step for _, step in checkpoints] == [epoch(p) for p in sample_checkpoints()]


def test_nc1_falls_from_the_first_to_the_last_checkpoint(trajectory: list[Point]) -> None:
    first, last = trajectory[0], trajectory[-1]
    assert last.nc1 < 0.5 * first.nc1, [(p.epoch, round(p.nc1, 4)) for p in trajectory]


def test_training_reaches_full_accuracy_and_keeps_it(trajectory: list[Point]) -> None:
    terminal = [p for p in trajectory if p.accuracy == 1.0]
    assert len(terminal) >= 2, [(p.epoch, p.accuracy) for p in trajectory]
    assert trajectory[-1].accuracy == 1.0
    assert trajectory[0].accuracy < 1.0


def test_mir_stays_below_its_nc_value_on_a_plateau_through_the_terminal_phase(
    trajectory: list[Point],
) -> None:
    """Shipped data: at accuracy 1.0, MIR ≈ 0.86–0.87, i.e. |MIR − MIR_NC(10)| ≈ 0.083–0.088 at every
    checkpoint; the gap neither closes nor drifts by more than a few thousandths."""
    terminal = [p for p in trajectory if p.accuracy == 1.0]
    table = [(p.epoch, round(p.mir, 4), round(p.mir_gap, 4)) for p in terminal]
    assert all(p.mir < MIR_NC_10 - 0.05 for p in terminal), table
    gaps = [p.mir_gap for p in terminal]
    assert max(gaps) - min(gaps) < 0.02, table


def test_make_demo_command_exits_0() -> None:
    """`make demo` measures the last sample checkpoint with its dump; that command succeeds."""
    last = sample_checkpoints()[-1]
    command = [str(Path(sys.executable).parent / "nc-audit"), "measure", str(last), "--features",
               str(last.with_suffix(".h5"))]  # fmt: skip
    if shutil.which("make") is not None:
        dry_run = subprocess.run(
            ["make", "-s", "-n", "demo"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        lines = [line for line in dry_run.stdout.splitlines() if "nc-audit measure" in line]
        assert len(lines) == 1, dry_run.stdout
        command = shlex.split(lines[0])
        assert command[1:] == ["measure", str(last.relative_to(ROOT)), "--features",
                               str(last.with_suffix(".h5").relative_to(ROOT))]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "nc1" in result.stdout
