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
    "vocab C=500 d=64 N=10,000: measure",
    "vocab C=2,000 d=32 N=20,000: measure",
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


def test_a_failing_or_hanging_row_keeps_what_it_measured_and_the_others_still_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The one-shot GPU run's robustness: a row that hangs is stopped at its limit and one that raises is
    reported, each with what it measured before; the rows after them still run."""
    import time

    import torch

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import gpu_check
    import gpu_rows
    from rich.console import Console

    def hangs(ctx: gpu_rows.Context, limit: float) -> list[gpu_rows.CheckRow]:
        row = ctx.track(gpu_rows.CheckRow("hangs", cpu_s=1.0))
        time.sleep(30)
        return [row]

    def raises(ctx: gpu_rows.Context, limit: float) -> list[gpu_rows.CheckRow]:
        raise RuntimeError("CUDA error: an illegal memory access\nmore lines")

    def works(ctx: gpu_rows.Context, limit: float) -> list[gpu_rows.CheckRow]:
        return [gpu_rows.CheckRow("works", 2.0, 1.0, met=True)]

    monkeypatch.setattr(gpu_rows, "ROWS", [(hangs, ["hangs"], 1.0, 0.0), (raises, ["raises"], 5.0, 0.0),
                                           (works, ["works"], 5.0, 0.0)])  # fmt: skip
    ctx = gpu_rows.Context(torch.device("cpu"), False, 1, tmp_path)
    started = time.perf_counter()
    rows = gpu_check.run_rows(ctx, 60.0, started, Console(stderr=True, quiet=True))
    assert time.perf_counter() - started < 10
    assert [(r.name, r.cpu_s) for r in rows] == [("hangs", 1.0), ("raises", None), ("works", 2.0)]
    assert rows[0].error.startswith("RowTimeoutError: ran past its 1 s limit")
    assert rows[1].error == "RuntimeError: CUDA error: an illegal memory access"
    assert rows[2].error == "" and rows[2].ratio == 2.0
