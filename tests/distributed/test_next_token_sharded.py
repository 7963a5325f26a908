"""Next-token extraction and measurement under ``torchrun --nproc_per_node=2`` (gloo, CPU).

Each rank extracts a contiguous range of windows into its own part; rank 0 joins the parts in rank order.
The dump equals the one a single process writes (same rows, same order, same values), and ``measure
--task next-token`` under torchrun reports the single process's numbers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import free_port
from gloo_ranks import CHILD_ENV
from tiny_lm import build

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def run(args: list[str], cwd: Path, ranks: int = 1) -> str:
    """stdout of ``nc-audit ARGS`` in a fresh process (one thread), under torchrun when ranks > 1."""
    launcher = [sys.executable]
    if ranks > 1:
        launcher += ["-m", "torch.distributed.run", f"--nproc_per_node={ranks}",
                     f"--master_port={free_port()}", "--master_addr=127.0.0.1"]  # fmt: skip
    command = [*launcher, "-m", "nc_audit", *args, "--no-progress"]
    launch = subprocess.Popen(command, cwd=cwd, env=os.environ | CHILD_ENV, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = launch.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(launch.pid, signal.SIGKILL)
        launch.communicate()
        pytest.fail(f"{' '.join(args)} did not finish within 240 s")
    assert launch.returncode == 0, stderr[-3000:]
    return stdout


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build(tmp_path_factory.mktemp("lm"), "gpt2", documents=60)


def read(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with h5py.File(path, "r") as handle:
        return handle["features"][()], handle["labels"][()], handle["head/weight"][()]


def test_sharded_extraction_writes_the_one_process_dump(lm: tuple[Path, Path], tmp_path: Path) -> None:
    folder, corpus = lm
    common = ["extract", str(folder), "-d", str(corpus), "--task", "next-token", "--context", "24"]
    run([*common, "-o", "one.h5"], tmp_path)
    run([*common, "-o", "two.h5"], tmp_path, ranks=2)
    one, two = read(tmp_path / "one.h5"), read(tmp_path / "two.h5")
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.h5", "two.h5"]  # no part left behind


def test_measure_under_torchrun_gives_the_one_process_numbers(lm: tuple[Path, Path], tmp_path: Path) -> None:
    folder, corpus = lm
    args = [
        "measure",
        str(folder),
        "-d",
        str(corpus),
        "--task",
        "next-token",
        "--context",
        "24",
        "--format",
        "json",
    ]
    one = json.loads(run([*args, "--cache-dir", "c1"], tmp_path))
    two = json.loads(run([*args, "--cache-dir", "c2"], tmp_path, ranks=2))
    assert one["metrics"].keys() == two["metrics"].keys()
    for name, value in one["metrics"].items():
        assert two["metrics"][name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
    drop = {"path"}
    assert {k: v for k, v in one["features"].items() if k not in drop} == {
        k: v for k, v in two["features"].items() if k not in drop
    }
    assert one["notes"] == two["notes"]
