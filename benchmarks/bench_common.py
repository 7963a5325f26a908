"""Shared pieces of the benchmark: timing, the machine's measured limits, and one result row.

Every limit is measured in the same run as the rows it normalises (docs/PERFORMANCE.md, Floors): memory read
bandwidth from a large sum, float64 and float32 GEMM rates from a square matmul. A row's floor is
max(bytes / bandwidth, flops / GEMM rate); "% of floor" = floor / measured time.
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
import torch

#: best_of stops repeating once this many seconds went into one measurement (slow rows: best of fewer).
REPEAT_BUDGET_S = 45.0


def synchronize(device: torch.device | str | None) -> None:
    """Wait for the kernels queued on ``device`` (CUDA runs them asynchronously); nothing on CPU."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def best_of(
    repeats: int,
    run: Callable[[], Any],
    budget_s: float = REPEAT_BUDGET_S,
    device: torch.device | str | None = None,
) -> tuple[float, Any]:
    """(fastest wall time in seconds, the last result) over up to ``repeats`` runs of ``run()``; no new
    run starts once ``budget_s`` seconds were spent (at least one run always happens). With a CUDA
    ``device`` every run is timed from an idle device to the end of its last kernel."""
    best, result, spent = float("inf"), None, 0.0
    for _ in range(max(1, repeats)):
        synchronize(device)
        start = time.perf_counter()
        result = run()
        synchronize(device)
        elapsed = time.perf_counter() - start
        best, spent = min(best, elapsed), spent + elapsed
        if spent > budget_s:
            break
    return best, result


@dataclass(frozen=True)
class Limits:
    """Measured peaks of this machine, this run."""

    read_bytes_per_s: float
    read_how: str
    gemm64_flops_per_s: float
    gemm32_flops_per_s: float

    def floor(self, nbytes: float = 0.0, flops: float = 0.0, dtype: str = "float64") -> float:
        """Seconds the work cannot beat: max(bytes / read bandwidth, flops / GEMM rate)."""
        rate = self.gemm64_flops_per_s if dtype == "float64" else self.gemm32_flops_per_s
        return max(nbytes / self.read_bytes_per_s, flops / rate)


def measure_limits(quick: bool) -> Limits:
    """Read bandwidth (best of a NumPy and a torch sum over 1 GiB, 256 MiB when quick) and GEMM rates
    (n×n matmul, n = 4096, 1024 when quick), best of 3 each."""
    values = np.ones((2**25 if quick else 2**27), dtype=np.float64)  # 256 MiB | 1 GiB
    tensor = torch.from_numpy(values)
    numpy_s, _ = best_of(3, values.sum)
    torch_s, _ = best_of(3, tensor.sum)
    read_how = "numpy sum" if numpy_s <= torch_s else f"torch sum ({torch.get_num_threads()} threads)"
    read_rate = values.nbytes / min(numpy_s, torch_s)
    del values, tensor
    n = 1024 if quick else 4096
    rates = {}
    for dtype in (torch.float64, torch.float32):
        A = torch.randn(n, n, dtype=dtype)
        B = torch.randn(n, n, dtype=dtype)
        A @ B  # warm-up
        seconds, _ = best_of(3, lambda A=A, B=B: A @ B)
        rates[dtype] = 2.0 * n**3 / seconds
    return Limits(read_rate, read_how, rates[torch.float64], rates[torch.float32])


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, str]:
    """What the numbers were measured on (recorded in RESULTS.md)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": f"{cores} usable ({os.cpu_count()} online), torch threads {torch.get_num_threads()}",
        "load average at start": load,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "h5py": f"{h5py.__version__} (HDF5 {h5py.version.hdf5_version})",
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }


@dataclass
class Row:
    """One benchmark row: nc-audit's time against a reference measured in the same run.

    ratio: reference_s / ours_s (a speed-up), or for throughput rows ours / reference throughput.
    met: True / False against ``target``; None when the row has no target.
    """

    name: str
    ours_s: float | None
    reference: str = ""
    reference_s: float | None = None
    ratio: float | None = None
    difference: float | None = None
    floor_s: float | None = None
    target: str = ""
    met: bool | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def floor_fraction(self) -> float | None:
        if self.floor_s is None or not self.ours_s:
            return None
        return self.floor_s / self.ours_s


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    return f"{value:.2f} s"


def number(value: float | None, fmt: str = ".3g") -> str:
    return "—" if value is None else format(value, fmt)


def verdict(met: bool | None) -> str:
    return "—" if met is None else ("MET" if met else "MISSED")
