"""torch.distributed for measuring and for training under ``torchrun``: one context, its collectives.

Under ``torchrun --nproc_per_node=R`` (RANK, WORLD_SIZE, LOCAL_RANK set) :meth:`DistributedContext.from_env`
joins the process group; with one process every method is a cheap no-op, so callers need no branches.

- Measuring: each rank streams one contiguous, balanced slice of a dump's rows (:meth:`row_range`); the
  streaming accumulators then merge across ranks through :func:`nc_audit.engine.state.reduce_over_ranks`,
  which all-gathers their packed state (:meth:`gather`) and merges it in rank order: exact, and
  identical on every rank.
- Training: :meth:`wrap_model` puts DistributedDataParallel around the model (gradients averaged);
  evaluation gathers rows (:meth:`gather_rows`) and sums counts (:meth:`all_reduce_sum`).

Rank 0 alone prints and writes files (:attr:`is_main`, :func:`is_main_process`). Backends: NCCL when the
device is CUDA (one GPU per rank, ``cuda:LOCAL_RANK``), else gloo on CPU; ``init_method="env://"`` reads
MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE set by torchrun.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from nc_audit.core.devices import resolve_device
from nc_audit.core.errors import InputError

#: How long a rank waits in a collective for the others before failing (a crashed rank must not hang CI).
DEFAULT_TIMEOUT = timedelta(minutes=10)


def _env_int(name: str, default: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise InputError(f"environment variable {name} is not set; launch several ranks with torchrun")
        return default
    try:
        return int(value)
    except ValueError:
        raise InputError(f"environment variable {name}={value!r} is not an integer") from None


def _destroy_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@dataclass
class DistributedContext:
    """Where this process stands among the ranks of a measurement, and the collectives it needs.

    A single-process context (``world_size == 1``) makes every method a cheap no-op, so callers need no
    branches: ``start, stop = ctx.row_range(N)`` is then ``(0, N)`` and merging returns its input.
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    closed: bool = False

    @classmethod
    def from_env(
        cls, device: torch.device | str | None = None, timeout: timedelta = DEFAULT_TIMEOUT
    ) -> DistributedContext:
        """The context of this process: distributed when torchrun set WORLD_SIZE > 1, else single.

        ``device`` is where the ranks' tensors live ('auto'/None, 'cpu', 'cuda', 'cuda:N'); CUDA selects
        NCCL and this rank's GPU (LOCAL_RANK), CPU selects gloo. The process group is created once per
        process and reused by later contexts (and by fine-tuning); it is destroyed at interpreter exit,
        because re-creating a destroyed gloo group in the same process can hang.
        """
        world_size = _env_int("WORLD_SIZE", 1)
        local_rank = _env_int("LOCAL_RANK", _env_int("RANK", 0))
        target = resolve_device(device, local_rank)
        if world_size <= 1:
            return cls(0, 1, target)
        if not dist.is_available():
            raise InputError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed support")
        if target.type == "cuda":
            torch.cuda.set_device(target)
        if not dist.is_initialized():
            backend = "nccl" if target.type == "cuda" else "gloo"
            dist.init_process_group(
                backend=backend,
                init_method="env://",
                rank=_env_int("RANK"),
                world_size=world_size,
                timeout=timeout,
            )
            atexit.register(_destroy_group)
        return cls(dist.get_rank(), dist.get_world_size(), target)

    @property
    def distributed(self) -> bool:
        """True when several ranks take part (collectives communicate)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that prints the report and writes files."""
        return self.rank == 0

    def row_range(self, num_rows: int) -> tuple[int, int]:
        """This rank's half-open slice [start, stop) of ``num_rows`` rows.

        Contiguous (each rank streams whole chunks of the file, in file order) and balanced (slice
        lengths differ by at most one); the slices of ranks 0..R−1 tile 0..num_rows in order.
        """
        if num_rows < 0:
            raise ValueError(f"num_rows must be >= 0, got {num_rows}")
        return num_rows * self.rank // self.world_size, num_rows * (self.rank + 1) // self.world_size

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``tensor`` (same shape on all ranks), in rank order, on ``tensor``'s device."""
        self._check_open()
        if not self.distributed:
            return [tensor]
        buffer = tensor.to(self._comm_device).contiguous()
        gathered = [torch.empty_like(buffer) for _ in range(self.world_size)]
        dist.all_gather(gathered, buffer)
        return [part.to(tensor.device) for part in gathered]

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """The sum of ``values`` over the ranks, as a new tensor on ``values``' device (a copy on one
        process). A tensor on another device than the backend needs travels there and back."""
        self._check_open()
        if not self.distributed:
            return values.clone()
        buffer = values.to(self._comm_device).clone()
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
        return buffer.to(values.device)

    def gather_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Every rank's rows (n_r, ...) concatenated in rank order (Σ n_r, ...); ranks may hold unequal n_r."""
        self._check_open()
        if not self.distributed:
            return rows
        local = rows.to(self._comm_device)
        count = torch.tensor([local.shape[0]], device=self._comm_device)
        counts = [torch.zeros_like(count) for _ in range(self.world_size)]
        dist.all_gather(counts, count)
        largest = int(max(int(c) for c in counts))
        padded = torch.zeros((largest, *local.shape[1:]), dtype=local.dtype, device=self._comm_device)
        padded[: local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        return torch.cat([p[: int(c)] for p, c in zip(parts, counts, strict=True)]).to(rows.device)

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """DistributedDataParallel around ``model`` on several ranks (averages gradients); else the model."""
        if not self.distributed:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    @property
    def _comm_device(self) -> torch.device:
        """Where collectives run: this rank's GPU under NCCL, else the CPU (gloo)."""
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def barrier(self) -> None:
        """Wait until every rank reaches this point (no-op on one process)."""
        self._check_open()
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        """End this context: later collectives through it raise. The process group itself stays for
        reuse by later measurements in the same process and is destroyed at exit (see from_env)."""
        self.closed = True

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("this DistributedContext was closed")

    def __enter__(self) -> DistributedContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_main_process() -> bool:
    """Whether this process is rank 0 (or the only one), from torchrun's RANK, before any process group."""
    return os.environ.get("RANK", "0") == "0"
