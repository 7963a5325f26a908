"""Specification of `finetune` under torchrun: 2 gloo ranks on CPU against one process.

Both see the same global batches (each rank takes batch[rank::2]). Tolerance 1e-6 on the final
float32 weights (|w| < 0.4, 12 Adam steps at lr 1e-2): DDP sums the ranks' gradients in another order
than autograd sums the shards' terms on one process, a rounding difference of about one float32 ulp
(6e-8 relative) per step; Adam's update is scale-free, so it carries that relative difference into
each step without amplifying it. Measured here: 1.0e-7 (λ = 0) and 7.1e-8 (λ = 0.5).

Cross-entropy is a per-sample mean, so λ = 0 needs no emulation. CMA is a batch-level statistic and
each rank computes it on its own shard: with λ > 0 the DDP run equals a single process with
``loss_shards=2`` and differs (by far more than the tolerance) from the whole-batch CMA.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import free_port, mlp_checkpoint

from nc_audit.train import FinetuneConfig, finetune

TOLERANCE = 1e-6
RUNNER = textwrap.dedent(
    """
    import json, sys
    import typer
    from nc_audit.cli.finetune import finetune_command
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(finetune_command)
    for args in json.loads(sys.argv[1]):  # several runs in one launch: each sets up its own process group
        try:
            app(args, standalone_mode=False)
        except SystemExit as done:
            if done.code:
                raise
    """
)
# 100 samples in global batches of 33: ranks get 17 and 16 samples, and the last batch (1 sample)
# leaves rank 1 empty, so the size weighting and the empty-shard path are both exercised.
SETTINGS = {
    "data": "digits",
    "epochs": 3,
    "lr": 1e-2,
    "batch_size": 33,
    "train_samples_per_class": 10,
    "seed": 2,
}


# torchrun launches of finetune (about 8 s): make test-all runs them
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]


@pytest.fixture(scope="module")
def start(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mlp_checkpoint(tmp_path_factory.mktemp("start") / "init.pt")


def torchrun(start: Path, runs: dict[str, float]) -> None:
    """One `torchrun --nproc_per_node=2` launch running `finetune` once per (out folder, λ)."""
    invocations = []
    for out, cma_weight in runs.items():
        args = [str(start), "--out", out, "--cma-weight", str(cma_weight), "--no-progress", "--device", "cpu"]
        for key, value in SETTINGS.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        invocations.append(args)
    runner = start.parent / "run_finetune.py"
    runner.write_text(RUNNER)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               f"--master_port={free_port()}", "--master_addr=127.0.0.1", str(runner), json.dumps(invocations)]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    # A session of its own, so that a hung launch is killed with its workers, not only the launcher.
    launch = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)  # fmt: skip
    try:
        _, stderr = launch.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(launch.pid, signal.SIGKILL)
        launch.communicate()
        pytest.fail("torchrun did not finish within 240 s")
    assert launch.returncode == 0, stderr[-3000:]


@pytest.fixture(scope="module")
def ddp(start: Path) -> dict[float, Path]:
    """Final folders of 2-rank runs with λ = 0 and λ = 0.5."""
    runs = {0.0: start.parent / "ddp_0", 0.5: start.parent / "ddp_5"}
    torchrun(start, {str(out): cma_weight for cma_weight, out in runs.items()})
    return runs


def single(start: Path, out: Path, cma_weight: float, loss_shards: int = 1) -> dict[str, torch.Tensor]:
    config = FinetuneConfig(out=out, checkpoint=start, cma_weight=cma_weight, loss_shards=loss_shards,
                            device="cpu", **SETTINGS)  # type: ignore[arg-type]  # fmt: skip
    return torch.load(finetune(config).final_path, weights_only=True)["state_dict"]


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_ddp_without_cma_matches_one_process(start: Path, ddp: dict[float, Path], tmp_path: Path) -> None:
    weights = torch.load(ddp[0.0] / "final.pt", weights_only=True)["state_dict"]
    reference = single(start, tmp_path / "one", 0.0)
    assert max_difference(weights, reference) <= TOLERANCE
    assert max_difference(weights, torch.load(start, weights_only=True)["state_dict"]) > 1e-3  # it did train
    # rank 0 alone wrote: one line per epoch, metrics measured on all 100 gathered train samples
    lines = [json.loads(line) for line in (ddp[0.0] / "history.jsonl").read_text().splitlines()]
    one = [json.loads(line) for line in (tmp_path / "one" / "history.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [0, 1, 2, 3]
    assert lines[0] == one[0]
    for ours, theirs in zip(lines[1:], one[1:], strict=True):
        assert ours["ce"] == pytest.approx(theirs["ce"], rel=1e-5)
        assert ours["train_accuracy"] == theirs["train_accuracy"]
        assert ours["nc1"] == pytest.approx(theirs["nc1"], rel=1e-4)
    assert not list(ddp[0.0].glob(".*"))


def test_ddp_with_cma_matches_one_process_with_per_rank_losses(
    start: Path, ddp: dict[float, Path], tmp_path: Path
) -> None:
    weights = torch.load(ddp[0.5] / "final.pt", weights_only=True)["state_dict"]
    assert max_difference(weights, single(start, tmp_path / "sharded", 0.5, loss_shards=2)) <= TOLERANCE
    assert max_difference(weights, single(start, tmp_path / "whole", 0.5)) > 100 * TOLERANCE
