"""Specification of nc_audit.metrics.eigen_backend: plain eigvalsh on CPU; on CUDA, time cuSOLVER and
MAGMA once per (device, size bucket, batch bucket), keep the faster, let NC_AUDIT_EIGH_BACKEND override.

No GPU here: the selection logic runs on CPU tensors with fake backends and a fake clock (the selector
takes them as arguments); the real CUDA path is exercised only on a machine with a GPU.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nc_audit.core.errors import InputError
from nc_audit.metrics.eigen_backend import (
    ENV_VAR,
    EighBackendSelector,
    backend_choices,
    batched_eigvalsh,
    bucket,
    run_with_library,
)

ROOT = Path(__file__).resolve().parents[2]


def symmetric(B: int, n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    A = torch.randn(B, n, n, generator=generator, dtype=torch.float64)
    return A + A.transpose(-1, -2)


class FakeBackends:
    """Backends that return eigvalsh (+ a backend-specific marker) and advance a fake clock by a cost."""

    def __init__(self, seconds_per_matrix: dict[str, float], fails: tuple[str, ...] = ()) -> None:
        self.cost, self.fails, self.now = seconds_per_matrix, fails, 0.0
        self.calls: list[tuple[str, int]] = []

    def run(self, backend: str, K: torch.Tensor) -> torch.Tensor:
        self.calls.append((backend, int(K.shape[0])))
        if backend in self.fails:
            raise RuntimeError(f"{backend} is not available")
        self.now += self.cost[backend] * K.shape[0]
        return torch.linalg.eigvalsh(K) + (1000.0 if backend == "magma" else 0.0)

    def clock(self) -> float:
        return self.now


def selector(fake: FakeBackends, environ: dict[str, str] | None = None) -> EighBackendSelector:
    return EighBackendSelector(fake.run, fake.clock, lambda device: None, lambda device: True, environ or {})


def test_cpu_path_is_plain_eigvalsh_for_any_leading_shape() -> None:
    K = symmetric(6, 9).reshape(2, 3, 9, 9)
    expected = np.linalg.eigvalsh(K.numpy())
    np.testing.assert_allclose(batched_eigvalsh(K).numpy(), expected, rtol=0, atol=1e-12)
    assert batched_eigvalsh(K[0, 0]).shape == (9,)
    assert backend_choices() == []  # nothing measured on CPU


def test_buckets_are_powers_of_two_with_32_as_a_boundary() -> None:
    assert [bucket(n) for n in (1, 2, 3, 10, 32, 33, 64, 65, 256, 257)] == [
        1,
        2,
        4,
        16,
        32,
        64,
        64,
        128,
        256,
        512,
    ]


def test_first_call_times_both_backends_and_returns_the_winners_eigenvalues() -> None:
    fake = FakeBackends({"cusolver": 3.0, "magma": 1.0})
    chooser = selector(fake)
    K = symmetric(20, 40)
    result = chooser.eigvalsh(K)
    np.testing.assert_allclose(result.numpy(), torch.linalg.eigvalsh(K).numpy() + 1000.0, atol=1e-12)
    assert fake.calls == [("cusolver", 1), ("cusolver", 20), ("magma", 1), ("magma", 20)]  # warm-up, timed
    [choice] = chooser.choices()
    assert choice["choice"] == "magma" and choice["source"] == "measured"
    assert choice["seconds"] == {"cusolver": 60.0, "magma": 20.0}
    assert (choice["size_bucket"], choice["batch_bucket"], choice["matrix_size"], choice["batch"]) == (
        64,
        32,
        40,
        20,
    )


def test_choice_is_cached_per_size_and_batch_bucket() -> None:
    fake = FakeBackends({"cusolver": 1.0, "magma": 2.0})
    chooser = selector(fake)
    chooser.eigvalsh(symmetric(20, 40))
    fake.calls.clear()
    chooser.eigvalsh(symmetric(30, 60, seed=1))  # same buckets (64, 32): no new timing
    assert fake.calls == [("cusolver", 30)]
    chooser.eigvalsh(symmetric(30, 65, seed=2))  # size bucket 128: timed again
    chooser.eigvalsh(symmetric(200, 60, seed=3))  # batch bucket 256: timed again
    assert len(chooser.choices()) == 3 and {c["choice"] for c in chooser.choices()} == {"cusolver"}
    chooser.reset()
    assert chooser.choices() == []


def test_a_failing_backend_loses_and_a_total_failure_raises() -> None:
    fake = FakeBackends({"cusolver": 5.0, "magma": 1.0}, fails=("magma",))
    chooser = selector(fake)
    chooser.eigvalsh(symmetric(4, 40))
    [choice] = chooser.choices()
    assert choice["choice"] == "cusolver" and choice["seconds"]["magma"] == float("inf")
    broken = selector(FakeBackends({"cusolver": 1.0, "magma": 1.0}, fails=("cusolver", "magma")))
    with pytest.raises(RuntimeError, match="every CUDA backend"):
        broken.eigvalsh(symmetric(4, 40))


@pytest.mark.parametrize("forced", ["cusolver", "MAGMA"])
def test_environment_variable_forces_a_backend_without_timing(forced: str) -> None:
    fake = FakeBackends({"cusolver": 1.0, "magma": 9.0})
    chooser = selector(fake, {ENV_VAR: forced})
    chooser.eigvalsh(symmetric(8, 40))
    assert fake.calls == [(forced.lower(), 8)]
    [choice] = chooser.choices()
    assert choice["choice"] == forced.lower() and choice["source"] == "env" and choice["seconds"] == {}
    chooser.environ = {ENV_VAR: "auto"}  # back to measuring
    chooser.eigvalsh(symmetric(8, 40))
    assert chooser.choices()[0]["source"] == "measured" and chooser.choices()[0]["choice"] == "cusolver"


def test_bad_environment_value_is_one_clear_error() -> None:
    with pytest.raises(InputError, match=f"{ENV_VAR}='rocsolver': expected one of cusolver, magma, auto"):
        selector(FakeBackends({}), {ENV_VAR: "rocsolver"}).eigvalsh(symmetric(2, 40))


def test_run_with_library_restores_the_preferred_library() -> None:
    before = torch.backends.cuda.preferred_linalg_library()
    for backend in ("cusolver", "magma"):
        try:  # a CPU build refuses to select a CUDA library; a CUDA build runs it
            run_with_library(backend, symmetric(2, 5))
        except RuntimeError as error:
            assert "compiled" in str(error)
        assert torch.backends.cuda.preferred_linalg_library() == before


def test_non_square_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="square"):
        batched_eigvalsh(torch.zeros(3, 4, 5))


@pytest.mark.slow  # runs benchmarks/bench.py --quick in a subprocess (make bench covers it)
def test_bench_quick_smoke_run_writes_results(tmp_path: Path) -> None:
    """`bench.py --quick` runs end to end and writes its Markdown (no timing is asserted)."""
    out = tmp_path / "RESULTS.md"
    command = [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--threads", "1",
               "--out", str(out), "--data-dir", str(tmp_path / "data")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    for row in (
        "sample-level H/MI",
        "trajectory",
        "streaming pass 1",
        "raw h5py read",
        "peak RSS",
        "## Targets",
    ):
        assert row in text, row
    assert "torch" in text and "MET" in text
    assert not list((tmp_path / "data").iterdir())  # the generated dump was removed


def test_cpu_batch_split_across_threads_gives_the_same_eigenvalues() -> None:
    """The CPU batch split over 2 threads returns exactly what one eigvalsh call returns, in order."""
    from nc_audit.metrics.eigen_backend import PARALLEL_FLOPS, cpu_eigvalsh

    n = 40
    B = int(PARALLEL_FLOPS / (4 / 3 * n**3)) + 7  # just above the threshold, odd-sized parts
    A = torch.randn(B, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    K = A @ A.transpose(1, 2)  # (B, n, n)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        split = cpu_eigvalsh(K)
        assert torch.get_num_threads() == 2  # restored after the pool
    finally:
        torch.set_num_threads(before)
    assert torch.equal(split, torch.linalg.eigvalsh(K))
