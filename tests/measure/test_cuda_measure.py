"""`--device cuda` end to end: measure (API and CLI), track, extract and finetune give the CPU's results.
Marked ``cuda``: skipped without a GPU, run by ``make gpu-check`` (``NC_AUDIT_TEST_CUDA_DEVICE=cpu``
runs them on the CPU to check their logic)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import mlp_checkpoint
from reference import relative_difference
from runs import SAMPLES

from nc_audit.io.checkpoints.load import load_checkpoint
from nc_audit.measurement.api import measure
from nc_audit.measurement.trajectory import measure_trajectory
from nc_audit.models.extract import extract
from nc_audit.models.spec import ModelSpec
from nc_audit.train import FinetuneConfig, finetune

pytestmark = [pytest.mark.cuda, pytest.mark.usefixtures("isolated_cli")]
ROOT = Path(__file__).resolve().parents[2]
RTOL = 1e-9


def assert_same(actual: dict, expected: dict, where: str) -> None:
    assert set(actual) == set(expected), where
    for key, value in expected.items():
        assert relative_difference(actual[key], value) <= RTOL, f"{where} {key}: {actual[key]!r} vs {value!r}"


def test_cuda_measure_gives_every_metric_of_the_cpu(random_dump: Path, cuda_device: torch.device) -> None:
    """Every metric, the sample-level ones included, within 1e-9 of the CPU's; the report names the device."""
    on_cpu = measure(random_dump, device="cpu", sample_level=True)
    on_device = measure(random_dump, device=str(cuda_device), sample_level=True)
    assert on_device.details["device"].startswith(cuda_device.type)
    assert_same(on_device.metrics, on_cpu.metrics, "measure")


def test_cuda_measure_of_a_held_out_split(tmp_path: Path, cuda_device: torch.device) -> None:
    """Means from train, decisions and K_Z on test (the second pass centres K_Z on another mean)."""
    dump = SAMPLES / "epoch_0030.h5"
    checkpoint = dump.with_suffix(".pt")
    with h5py.File(dump) as handle:
        if "test" not in handle:
            pytest.skip("the sample dump has no test split")
    options = {"features": dump, "split": "test", "sample_level": True}
    assert_same(
        measure(checkpoint, device=str(cuda_device), **options).metrics,
        measure(checkpoint, device="cpu", **options).metrics,
        "measure --split test",
    )


def test_cuda_cli_measure_writes_the_cpu_json(
    random_dump: Path, tmp_path: Path, cuda_device: torch.device
) -> None:
    """`python -m nc_audit measure --device cuda --json`: exit 0 and the CPU's metrics."""
    out = tmp_path / "report.json"
    command = [sys.executable, "-m", "nc_audit", "measure", str(random_dump), "--device", str(cuda_device),
               "--json", str(out), "--no-progress"]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads(out.read_text())["metrics"]
    expected = measure(random_dump, device="cpu").to_dict()["metrics"]
    assert_same(metrics, expected, "CLI")


def test_cuda_track_gives_the_cpu_trajectory(cuda_device: torch.device) -> None:
    """The sample run's trajectory (batched class-level information on the device) equals the CPU's."""
    on_device = measure_trajectory([SAMPLES], device=str(cuda_device))
    on_cpu = measure_trajectory([SAMPLES], device="cpu")
    assert [r.label for r in on_device] == [r.label for r in on_cpu]
    for a, b in zip(on_device, on_cpu, strict=True):
        assert_same(a.metrics, b.metrics, b.label)


def test_cuda_extract_gives_the_cpu_features(tmp_path: Path, cuda_device: torch.device) -> None:
    """Features extracted on the device equal the CPU's to float32 rounding (1e-5 relative)."""
    checkpoint = mlp_checkpoint(tmp_path / "mlp.pt")
    dumps = [extract(checkpoint, "digits", tmp_path / f"{name}.h5", model=ModelSpec(device=str(device)))
             for name, device in (("cpu", "cpu"), ("device", str(cuda_device)))]  # fmt: skip
    with h5py.File(dumps[0]) as cpu, h5py.File(dumps[1]) as dev:
        for split in ("train", "test"):
            if split in cpu:
                np.testing.assert_array_equal(dev[f"{split}/labels"][:], cpu[f"{split}/labels"][:])
                np.testing.assert_allclose(
                    dev[f"{split}/features"][:], cpu[f"{split}/features"][:], rtol=1e-5, atol=1e-5
                )


def test_cuda_finetune_trains_and_is_measurable(tmp_path: Path, cuda_device: torch.device) -> None:
    """Two epochs of CE + CMA + MIR/HDR on the device: a finite history, a final checkpoint that
    measure reads, and weights near the CPU run's (float32 training: 1e-3)."""
    start = mlp_checkpoint(tmp_path / "init.pt")
    settings = {"checkpoint": start, "data": "digits", "epochs": 2, "lr": 1e-2, "batch_size": 16,
                "cma_weight": 0.3, "mir_weight": 0.05, "hdr_weight": 0.05, "train_samples_per_class": 8,
                "seed": 3}  # fmt: skip
    runs = {}
    for name, device in (("cpu", "cpu"), ("device", str(cuda_device))):
        runs[name] = finetune(FinetuneConfig(out=tmp_path / name, device=device, **settings))  # type: ignore[arg-type]
    assert all(np.isfinite(v) for v in runs["device"].after.values() if isinstance(v, float))
    report = measure(runs["device"].final_path, data="digits", cache_dir=tmp_path / "cache", device="cpu")
    assert report.metrics["nc1"] is not None
    cpu_state, dev_state = (load_checkpoint(run.final_path).state_dict for run in runs.values())
    for key, value in cpu_state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            torch.testing.assert_close(dev_state[key].cpu(), value, rtol=1e-3, atol=1e-3)
