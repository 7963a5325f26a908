"""torch.distributed for measurement under ``torchrun``: shard a dump's rows, merge what each rank saw.

DESIGN.md, Scale: "Statistics from shards or ranks merge exactly (Chan et al. pairwise update);
torch.distributed all-reduces them." Under ``torchrun --nproc_per_node=R`` each rank streams one
contiguous, balanced slice of the rows (:meth:`DistributedContext.row_range`); after pass 1 the ranks
all-gather their first-pass sums and merge them in rank order (:meth:`DistributedContext.gather`, then
``ShiftedSums.absorb``; :meth:`DistributedContext.merge_class_stats` does the same for ClassStats):
exact and identical on every rank. After pass 2 they sum their plain counts
(:meth:`DistributedContext.sum_`). Rank 0 alone prints and writes files
(:attr:`DistributedContext.is_main`).

Backends: NCCL when the device is CUDA (one GPU per rank, ``cuda:LOCAL_RANK``), else gloo on CPU;
``init_method="env://"`` reads MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE set by torchrun.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist

from nc_audit.core.errors import InputError
from nc_audit.core.class_stats import ClassStats

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


def _resolve_device(device: torch.device | str | None, local_rank: int) -> torch.device:
    """'auto'/None → CUDA when available, else CPU; a bare 'cuda' becomes this rank's GPU."""
    if device is None or str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is available (use --device cpu or auto)")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


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
        target = _resolve_device(device, local_rank)
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

    def merge_class_stats(self, stats: ClassStats) -> ClassStats:
        """The statistics of all ranks' rows, identical on every rank: an all-gather of the packed
        statistics merged in rank order with Chan's update — exact and deterministic, unlike a SUM,
        which cannot merge centred scatters. One process: ``stats``.

        Works whether or not ``stats`` carries the within-class scatter (``scatter`` may be None).
        """
        self._check_open()
        if not self.distributed:
            return stats
        C, d = stats.num_classes, stats.feature_dim
        merged, *others = (ClassStats.unpack(flat, C, d) for flat in self.gather(stats.pack()))
        for other in others:
            merged = merged.merge(other)
        return merged

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``tensor`` (same shape on all ranks), in rank order, on ``tensor``'s device."""
        self._check_open()
        if not self.distributed:
            return [tensor]
        comm_device = self.device if self.device.type == "cuda" else torch.device("cpu")
        buffer = tensor.to(comm_device).contiguous()
        gathered = [torch.empty_like(buffer) for _ in range(self.world_size)]
        dist.all_gather(gathered, buffer)
        return [part.to(tensor.device) for part in gathered]

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """All-reduce SUM of ``tensor`` over the ranks, in place; returns ``tensor``.

        For plain sums: ``DecisionCounter.counts()`` (then ``set_counts``) and each tensor of
        ``SampleLevelStats.tensors()`` (live state, so the object is merged). A tensor on another
        device than the backend needs (CPU tensor under NCCL) travels there and back.
        """
        self._check_open()
        if not self.distributed:
            return tensor
        comm_device = self.device if self.device.type == "cuda" else torch.device("cpu")
        if tensor.device == comm_device and tensor.is_contiguous():
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
            return tensor
        buffer = tensor.to(comm_device).contiguous()
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
        tensor.copy_(buffer)
        return tensor

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
