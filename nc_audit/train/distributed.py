"""torch.distributed for fine-tuning under ``torchrun``: process group, DDP, sharding and gathering.

Under ``torchrun --nproc_per_node=N`` (RANK, WORLD_SIZE, LOCAL_RANK set) every rank draws the same
seeded permutation each epoch and takes the strided shard ``batch[rank::N]`` of every global batch
(DistributedSampler's interleaving, applied per batch, so the global batches are those of a
single-process run). Backends: NCCL with one GPU per rank, else gloo on CPU. Rank 0 alone writes files.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from nc_audit.measure.api import resolve_device
from nc_audit.core.errors import InputError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and prints."""
        return self.rank == 0


def _env_int(name: str) -> int:
    try:
        return int(os.environ[name])
    except ValueError:
        raise InputError(f"environment variable {name}={os.environ[name]!r} is not an integer") from None


def init_distributed(device: str) -> DistContext:
    """A DistContext from torchrun's environment (one process when WORLD_SIZE is unset or 1).

    The process group is created once per process and destroyed at exit, not after each run: later
    runs in the same process (a script, a notebook) reuse it, since re-creating a destroyed gloo group
    in one process can hang.
    """
    if "WORLD_SIZE" not in os.environ or _env_int("WORLD_SIZE") <= 1:
        return DistContext(0, 1, resolve_device(device))
    rank, world_size = _env_int("RANK"), _env_int("WORLD_SIZE")
    local_rank = _env_int("LOCAL_RANK") if "LOCAL_RANK" in os.environ else rank
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if device.startswith("cuda") and not use_cuda:
        raise InputError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    target = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world_size)
        atexit.register(_destroy_group)
    return DistContext(dist.get_rank(), dist.get_world_size(), target)


def _destroy_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(ctx: DistContext, model: nn.Module) -> nn.Module:
    """DistributedDataParallel around ``model`` on several ranks (averages gradients); else the model."""
    if not ctx.distributed:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def row_range(ctx: DistContext, num_rows: int) -> tuple[int, int]:
    """This rank's contiguous half-open slice of ``num_rows`` rows (for evaluation passes)."""
    return num_rows * ctx.rank // ctx.world_size, num_rows * (ctx.rank + 1) // ctx.world_size


def all_reduce_sum(ctx: DistContext, values: torch.Tensor) -> torch.Tensor:
    """Sum of ``values`` over all ranks (a copy; unchanged on one process)."""
    if not ctx.distributed:
        return values.clone()
    reduced = values.to(ctx.device).clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced.to(values.device)


def gather_rows(ctx: DistContext, rows: torch.Tensor) -> torch.Tensor:
    """Every rank's rows (n_r, ...) concatenated in rank order (Σ n_r, ...); ranks may hold unequal n_r."""
    if not ctx.distributed:
        return rows
    local = rows.to(ctx.device)
    count = torch.tensor([local.shape[0]], device=ctx.device)
    counts = [torch.zeros_like(count) for _ in range(ctx.world_size)]
    dist.all_gather(counts, count)
    largest = int(max(int(c) for c in counts))
    padded = torch.zeros((largest, *local.shape[1:]), dtype=local.dtype, device=ctx.device)
    padded[: local.shape[0]] = local
    pieces = [torch.empty_like(padded) for _ in range(ctx.world_size)]
    dist.all_gather(pieces, padded)
    return torch.cat([p[: int(c)] for p, c in zip(pieces, counts, strict=True)]).to(rows.device)
