"""`interpolate --model`: the architecture compared is the one that will be built (the factory named on
the command line, for both ends), so a Lightning checkpoint and its own fine-tune interpolate."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner, Result

from nc_audit.cli import app

ZOO = """
from torch import nn

def mlp(width=16):
    return nn.Sequential(nn.Linear(10, width), nn.ReLU(), nn.Linear(width, 4))
"""


@pytest.fixture
def zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "zoo.py").write_text(ZOO)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "zoo", raising=False)
    monkeypatch.setenv("NC_AUDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return tmp_path


def lightning_checkpoint(path: Path, width: int = 16) -> Path:
    """What ``Trainer.save_checkpoint`` writes for a LightningModule holding ``self.model = mlp()``."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(10, width), torch.nn.ReLU(), torch.nn.Linear(width, 4))
    state = {f"model.{key}": value for key, value in net.state_dict().items()}
    torch.save(
        {"state_dict": state, "epoch": 2, "global_step": 30, "pytorch-lightning_version": "2.4.0"}, path
    )
    return path


def vectors(path: Path, n: int = 80) -> Path:
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 4
    inputs = rng.normal(size=(n, 10)) + 2.0 * np.eye(10)[labels]
    np.savez(path, inputs=inputs.astype(np.float32), labels=labels)
    return path


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [*map(str, args), "--no-progress"])


@pytest.mark.slow
def test_a_lightning_checkpoint_and_its_finetune_interpolate_with_one_factory(zoo: Path) -> None:
    lit, data = lightning_checkpoint(zoo / "epoch=2-step=30.ckpt"), vectors(zoo / "vec.npz")
    tuned = invoke("finetune", lit, "--model", "zoo:mlp", "--data", data, "--epochs", "1",
                   "--cma-weight", "0", "--out", zoo / "ft")  # fmt: skip
    assert tuned.exit_code == 0, tuned.output
    line = invoke("interpolate", lit, zoo / "ft" / "final.pt", "--model", "zoo:mlp", "--data", data,
                  "--steps", "2", "--format", "json")  # fmt: skip
    assert line.exit_code == 0, line.output
    # without --model the Lightning file says nothing of its architecture: refused, naming the cause
    bare = invoke("interpolate", lit, zoo / "ft" / "final.pt", "--data", data, "--steps", "2")
    assert bare.exit_code == 2 and "--model" in bare.stderr, bare.output


def test_a_factory_that_builds_another_shape_is_still_refused(zoo: Path) -> None:
    """What is built for both ends is compared with each file's tensors: a wider checkpoint does not fit."""
    narrow, wide = lightning_checkpoint(zoo / "a.ckpt"), lightning_checkpoint(zoo / "b.ckpt", width=24)
    result = invoke("interpolate", narrow, wide, "--model", "zoo:mlp", "--data", vectors(zoo / "vec.npz"))
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "b.ckpt" in result.stderr
