"""One batched ``eigvalsh`` for stacks of small symmetric matrices, with the fastest CUDA backend.

docs/PERFORMANCE.md, GPU notes: on CUDA, ``torch.linalg.eigvalsh`` uses a truly batched cuSOLVER kernel only
up to 32×32 and loops over the batch above that; MAGMA
(``torch.backends.cuda.preferred_linalg_library("magma")``) was reported 5–17× faster for 32 < C ≤ 256
— "time both once on a real GPU before choosing". So the first CUDA call for a (device, size bucket,
batch bucket) runs the batch once with each backend, keeps the faster one for that bucket, and returns
the winner's eigenvalues (no extra work beyond the loser's run); later calls use the choice. The
process-wide preferred library is restored after every call. On CPU, where PyTorch solves a batch one
matrix after another on one core, a large batch is split across the cores, one ``eigvalsh`` per thread
(LAPACK releases the GIL): the same routine on each matrix, so the same eigenvalues.

``NC_AUDIT_EIGH_BACKEND=cusolver|magma|auto`` overrides the choice (auto: measure, the default).
:func:`backend_choices` lists what was measured, so a report or benchmark can print it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import torch

from nc_audit.core.errors import InputError
from nc_audit.core.threads import single_threaded_kernels, worker_count

ENV_VAR = "NC_AUDIT_EIGH_BACKEND"
BACKENDS = ("cusolver", "magma")

#: Runs eigvalsh of a batch with one backend: (backend, K (B, n, n)) -> eigenvalues (B, n).
Runner = Callable[[str, torch.Tensor], torch.Tensor]
#: Wall-clock seconds (monotonic).
Clock = Callable[[], float]
#: Waits for the device's queued work (CUDA kernels run asynchronously).
Synchronize = Callable[[torch.device], None]


def bucket(n: int) -> int:
    """The next power of two ≥ n (n ≥ 1): 17..32 → 32, 33..64 → 64 (32 is cuSOLVER's batched limit)."""
    return 1 << max(0, int(n) - 1).bit_length()


def run_with_library(backend: str, K: torch.Tensor) -> torch.Tensor:
    """eigvalsh of K with ``backend`` as the preferred CUDA linalg library, restoring the previous one."""
    previous = torch.backends.cuda.preferred_linalg_library()
    try:
        torch.backends.cuda.preferred_linalg_library(backend)
        eigenvalues: torch.Tensor = torch.linalg.eigvalsh(K)
        return eigenvalues
    finally:
        torch.backends.cuda.preferred_linalg_library(previous)


def cuda_synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class BackendChoice:
    """What was decided for one (device, matrix-size bucket, batch bucket), and why.

    seconds: backend -> wall time of the timed batch (inf: the backend failed); source: "measured"
    (timed here), "env" (NC_AUDIT_EIGH_BACKEND) — then seconds is empty.
    """

    device: str
    size_bucket: int
    batch_bucket: int
    matrix_size: int
    batch: int
    seconds: dict[str, float]
    choice: str
    source: str


class EighBackendSelector:
    """Chooses and remembers the faster CUDA eigvalsh backend per (device, C bucket, B bucket).

    Every dependency is injectable for tests without a GPU: ``runner`` (backend, K) -> eigenvalues,
    ``clock``, ``synchronize``, ``selects`` (which devices take part; default: CUDA devices) and
    ``environ`` (where NC_AUDIT_EIGH_BACKEND is read).
    """

    def __init__(
        self,
        runner: Runner = run_with_library,
        clock: Clock = time.perf_counter,
        synchronize: Synchronize = cuda_synchronize,
        selects: Callable[[torch.device], bool] = lambda device: device.type == "cuda",
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.runner, self.clock, self.synchronize, self.selects = runner, clock, synchronize, selects
        self.environ = os.environ if environ is None else environ
        self._choices: dict[tuple[str, int, int], BackendChoice] = {}

    def override(self) -> str | None:
        """The backend forced by NC_AUDIT_EIGH_BACKEND, or None for 'auto' / unset."""
        value = self.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
        if value == "auto":
            return None
        if value not in BACKENDS:
            raise InputError(f"{ENV_VAR}={value!r}: expected one of cusolver, magma, auto")
        return value

    def eigvalsh(self, K: torch.Tensor) -> torch.Tensor:
        """Eigenvalues (ascending) of symmetric matrices. K: (..., n, n) -> (..., n)."""
        if K.ndim < 2 or K.shape[-1] != K.shape[-2]:
            raise ValueError(f"expected square matrices (..., n, n), got {tuple(K.shape)}")
        n = K.shape[-1]
        plain: torch.Tensor
        if K.numel() == 0:
            plain = torch.linalg.eigvalsh(K)
            return plain
        if not self.selects(K.device):
            if K.device.type == "cpu":
                return cpu_eigvalsh(K.reshape(-1, n, n)).reshape(K.shape[:-1])
            plain = torch.linalg.eigvalsh(K)
            return plain
        return self._eigvalsh_batch(K.reshape(-1, n, n)).reshape(K.shape[:-1])

    def _eigvalsh_batch(self, K: torch.Tensor) -> torch.Tensor:
        """(B, n, n) -> (B, n) with the chosen (or forced, or now measured) backend."""
        forced = self.override()
        key = (str(K.device), bucket(K.shape[-1]), bucket(K.shape[0]))
        if forced is not None:
            if key not in self._choices or self._choices[key].choice != forced:
                self._choices[key] = self._record(key, K, {}, forced, "env")
            return self.runner(forced, K)
        known = self._choices.get(key)
        if known is not None and known.source == "measured":
            return self.runner(known.choice, K)
        return self._measure(key, K)

    def _measure(self, key: tuple[str, int, int], K: torch.Tensor) -> torch.Tensor:
        """Run the batch with every backend (after a one-matrix warm-up each), keep the faster."""
        seconds: dict[str, float] = {}
        results: dict[str, torch.Tensor] = {}
        for backend in BACKENDS:
            try:
                self.runner(backend, K[:1])  # warm-up: handles, workspaces, lazy library loading
                self.synchronize(K.device)
                start = self.clock()
                results[backend] = self.runner(backend, K)
                self.synchronize(K.device)
                seconds[backend] = self.clock() - start
            except RuntimeError:  # e.g. a PyTorch built without MAGMA
                seconds[backend] = float("inf")
        if not results:
            raise RuntimeError(f"eigvalsh failed with every CUDA backend ({', '.join(BACKENDS)})")
        choice = min(results, key=lambda backend: seconds[backend])
        self._choices[key] = self._record(key, K, seconds, choice, "measured")
        return results[choice]

    @staticmethod
    def _record(
        key: tuple[str, int, int], K: torch.Tensor, seconds: dict[str, float], choice: str, source: str
    ) -> BackendChoice:
        device, size_bucket, batch_bucket = key
        return BackendChoice(
            device, size_bucket, batch_bucket, int(K.shape[-1]), int(K.shape[0]), seconds, choice, source
        )

    def choices(self) -> list[dict]:
        """Every decision so far, as plain dicts (device, buckets, sizes, seconds, choice, source)."""
        return [asdict(choice) for choice in self._choices.values()]

    def reset(self) -> None:
        """Forget every decision (the next CUDA call measures again)."""
        self._choices.clear()


_SELECTOR = EighBackendSelector()


#: Below this many flops ((4/3)·n³ per matrix) a CPU batch is not worth a thread pool.
PARALLEL_FLOPS = 2e7


def cpu_eigvalsh(K: torch.Tensor) -> torch.Tensor:
    """``torch.linalg.eigvalsh`` of a CPU batch (B, n, n), split into contiguous parts, one per core."""
    B, n = int(K.shape[0]), int(K.shape[-1])
    workers = min(worker_count(K.device), B)
    if workers < 2 or B * 4 / 3 * n**3 < PARALLEL_FLOPS:
        eigenvalues: torch.Tensor = torch.linalg.eigvalsh(K)
        return eigenvalues
    parts = torch.tensor_split(K, workers)
    with single_threaded_kernels(True), ThreadPoolExecutor(workers) as pool:
        return torch.cat(list(pool.map(torch.linalg.eigvalsh, parts)))


def batched_eigvalsh(K: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of a batch of symmetric matrices K (..., n, n) -> (..., n), ascending, in one call.

    CPU: ``torch.linalg.eigvalsh``, the batch split across the cores (:func:`cpu_eigvalsh`). CUDA: the backend (cuSOLVER or MAGMA) measured fastest for this
    device and size, see the module docstring; NC_AUDIT_EIGH_BACKEND overrides.
    """
    return _SELECTOR.eigvalsh(K)


def backend_choices() -> list[dict]:
    """What the process-wide selector measured and chose (empty on CPU-only runs)."""
    return _SELECTOR.choices()
