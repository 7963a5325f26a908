"""`demo grokking --model transformer` at any size: --p, --train-fraction, --d-model, --heads, --weight-decay
and --steps reach the reference configuration of Nanda et al. (issue 22, item 5)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nc_audit.cli import app
from nc_audit.core.errors import InputError
from nc_audit.experiments.grokking import REFERENCE, ModelShape, run_config, run_grokking
from nc_audit.experiments.grokking_train import _optimizer
from nc_audit.models.registry import architecture_record, build_model

pytestmark = pytest.mark.usefixtures("one_thread", "isolated_cli")


def test_reference_configuration_is_reachable() -> None:
    shape = ModelShape(REFERENCE["d_model"], REFERENCE["heads"])
    config = run_config("transformer", REFERENCE["p"], REFERENCE["train_fraction"], 40000, 500, 0, shape,
                        REFERENCE["weight_decay"])  # fmt: skip
    assert config["p"] == 113 and config["train_fraction"] == 0.3
    assert config["model"]["config"] == {"d_model": 128, "heads": 4, "d_mlp": 512}
    assert config["optimizer"]["weight_decay"] == 1.0
    record = architecture_record("transformer", {"p": 113, **config["model"]["config"]}, 113)
    model = build_model(record)
    assert model(torch.tensor([[1, 2], [3, 4]])).shape == (2, 113)


def test_defaults_are_unchanged_without_the_new_options() -> None:
    config = run_config("transformer")
    assert config["model"]["config"] == {"d_model": 64, "heads": 4, "d_mlp": 256}
    assert config["optimizer"]["weight_decay"] == 1.0 and config["p"] == 59


def test_weight_decay_reaches_the_optimizer() -> None:
    config = run_config("transformer", weight_decay=0.25)
    model = torch.nn.Linear(2, 2)
    assert _optimizer(model, config["optimizer"]).param_groups[0]["weight_decay"] == 0.25


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "modmlp", "shape": ModelShape(d_model=32)}, "--model transformer only"),
        ({"model": "transformer", "shape": ModelShape(d_model=30, heads=4)}, "multiple of --heads"),
        ({"model": "transformer", "weight_decay": float("nan")}, "--weight-decay"),
        ({"model": "transformer", "weight_decay": -1.0}, "--weight-decay"),
    ],
)
def test_bad_sizes_are_refused_in_one_line(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        run_config(**kwargs)


def test_resume_refuses_another_weight_decay(tmp_path: Path) -> None:
    out = tmp_path / "g"
    run_grokking(
        out, model="transformer", p=7, steps=2, save_every=1, shape=ModelShape(8, 2), weight_decay=0.5
    )
    with pytest.raises(InputError, match="settings differ"):
        run_grokking(
            out, model="transformer", p=7, steps=3, save_every=1, shape=ModelShape(8, 2), resume=True
        )


def test_cli_passes_the_sizes_through(tmp_path: Path) -> None:
    out = tmp_path / "g"
    args = ["demo", "grokking", "--model", "transformer", "--p", "7", "--train-fraction", "0.5", "--d-model", "8",
            "--heads", "2", "--weight-decay", "0.5", "--steps", "2", "--save-every", "1", "--out", str(out),
            "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = (out / "SUMMARY.md").read_text()
    assert "transformer (d_model 8, heads 2, d_mlp 32)" in summary and "weight decay 0.5" in summary
    refused = CliRunner().invoke(app, ["demo", "grokking", "--d-model", "8", "--out", str(tmp_path / "m")])
    assert refused.exit_code == 2 and "--model transformer only" in refused.output
