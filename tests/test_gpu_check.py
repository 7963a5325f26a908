"""`make gpu-check` in its CPU mode, end to end, as CI runs it: one "no CUDA" line, every row of the table
(run on the CPU at --quick size), the Markdown results, exit 0. No timing is asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROWS = (
    "CUDA tests (pytest -m cuda)",
    "raw h5py read, 8,192×512 float32",
    "pass 1 (accumulate_stats)",
    "pass 2 (count_decisions)",
    "measure (2 passes + metrics, subprocess)",
    "trajectory, 10 checkpoints, C=100, d=128",
    "sample-level H/MI, N=500, d=32, C=10",
    "sample-level H/MI, N=2,000, d=32, C=10",
    "CMA loss forward+backward, B=64, C=10, d=32",
    "agreement CPU vs cpu, float64",
)


@pytest.mark.slow
def test_gpu_check_without_cuda_runs_every_row_on_the_cpu(tmp_path: Path) -> None:
    out, data = tmp_path / "GPU_RESULTS.md", tmp_path / "data"
    data.mkdir()
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "gpu_check.py"),
        "--out",
        str(out),
        "--data-dir",
        str(data),
    ]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "COLUMNS": "250"}  # no GPU, even on a machine with one
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    no_cuda = [line for line in done.stdout.splitlines() if line.startswith("no CUDA device")]
    assert len(no_cuda) == 1, done.stdout[:2000]
    text = out.read_text()
    table = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    names = [line.split(" | ")[0][2:] for line in table]
    assert [name for name in names if name in ROWS] == list(ROWS), names  # every row, in order
    for line in table:
        if line.split(" | ")[0][2:] in ROWS:
            assert "ERROR" not in line, line
    for name in ROWS:
        assert name in done.stdout, name  # the printed table holds the same rows
    assert "no CUDA device" in text and "CUDA tests" in text
    assert "skipped: no CUDA device" in text
    assert not list(data.iterdir())  # the dumps were removed
