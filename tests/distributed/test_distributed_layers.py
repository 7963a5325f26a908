"""``--layers`` under torchrun: 2 gloo ranks share the forward passes' batches (round robin) and merge
every layer's accumulator in rank order; the statistics equal one process's (1e-10 relative), on both ranks,
also when a nearly collapsed layer makes the passes run twice."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from conftest import free_port
from gloo_ranks import spawn_ranks
from torch import nn

from nc_audit.distributed import DistributedContext
from nc_audit.measurement.layer_passes import LayerStats, accumulate_layers

pytestmark = [pytest.mark.distributed, pytest.mark.slow]  # two spawned gloo processes: ~14 s
RANKS = 2


def problem() -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    """A fixed net and 5 batches (the last short); ``near`` is a nearly collapsed copy of the input."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).double().eval()
    generator = torch.Generator().manual_seed(1)
    labels = torch.arange(3).repeat(30)[:87]
    inputs = (3.0 * torch.randn(3, 6, generator=generator, dtype=torch.float64))[labels]
    inputs = inputs + 1e-7 * torch.randn(87, 6, generator=generator, dtype=torch.float64)
    return net, [(inputs[i : i + 20], labels[i : i + 20]) for i in range(0, 87, 20)]


def run(ctx: DistributedContext | None) -> LayerStats:
    net, batches = problem()

    def forward(inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = net[1](net[0](inputs))
        return {"0": inputs, "2": hidden}

    with torch.inference_mode():
        return accumulate_layers(lambda: batches, forward, 3, torch.device("cpu"), 2**30, "batches", ctx)


def _worker(rank: int, port: int, out: str) -> None:
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                   "LOCAL_RANK": str(rank), "WORLD_SIZE": str(RANKS)}  # fmt: skip
    torch.set_num_threads(1)
    from datetime import timedelta

    ctx = DistributedContext.from_env("cpu", timeout=timedelta(seconds=60))
    found = run(ctx)
    ctx.close()
    torch.save({"passes": found.passes, "stats": found.stats}, Path(out) / f"rank{rank}.pt")


def test_two_ranks_give_one_process_layer_statistics(tmp_path: Path) -> None:
    spawn_ranks(_worker, (free_port(), str(tmp_path)), RANKS)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=False) for rank in range(RANKS)]
    one = run(None)
    assert one.passes == 2  # nearly collapsed: the second pass centres each class on its mean
    for found in ranks:
        assert found["passes"] == one.passes
        assert list(found["stats"]) == ["0", "2"]
        for name, stats in one.stats.items():
            theirs = found["stats"][name]
            for field in ("counts", "sums", "scatter", "sq_dev"):
                torch.testing.assert_close(
                    getattr(theirs, field), getattr(stats, field), rtol=1e-10, atol=0.0
                )
    for field in ("sums", "scatter", "sq_dev"):  # identical on both ranks, bit for bit
        assert torch.equal(getattr(ranks[0]["stats"]["2"], field), getattr(ranks[1]["stats"]["2"], field))
