"""Specification of `finetune --resume`: a killed run, resumed, ends bit-identical to an uninterrupted one.

The kill is real: the run is a subprocess that gets SIGKILL once its first epoch checkpoint exists.
Bit-identity holds on one machine with the same thread settings (every run here uses one thread).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import typer
from conftest import mlp_checkpoint
from runs import assert_bad_input
from typer.testing import CliRunner, Result

from nc_audit.train import FinetuneConfig, finetune

RUNNER = textwrap.dedent(
    """
    import typer
    from nc_audit.cli.finetune import finetune_command
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(finetune_command)
    app()
    """
)
SETTINGS = {
    "cma_weight": 0.2,
    "data": "digits",
    "lr": 1e-2,
    "batch_size": 8,
    "train_samples_per_class": 12,
    "seed": 4,
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def start(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mlp_checkpoint(tmp_path_factory.mktemp("start") / "init.pt", [24, 16])


def cli_args(checkpoint: Path, out: Path, epochs: int, **overrides: object) -> list[str]:
    settings = SETTINGS | overrides
    args = [str(checkpoint), "--out", str(out), "--epochs", str(epochs), "--no-progress"]
    for key, value in settings.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def invoke(*args: str) -> Result:
    from nc_audit.cli.finetune import finetune_command

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(finetune_command)
    return CliRunner().invoke(app, list(args))


def uninterrupted(checkpoint: Path, out: Path, epochs: int) -> FinetuneConfig:
    config = FinetuneConfig(out=out, checkpoint=checkpoint, epochs=epochs, **SETTINGS)  # type: ignore[arg-type]
    finetune(config)
    return config


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "final.pt", weights_only=True)["state_dict"]


def assert_identical(a: Path, b: Path) -> None:
    """Same final weights bit for bit, and the same history.jsonl byte for byte."""
    wa, wb = final_weights(a), final_weights(b)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert (a / "history.jsonl").read_text() == (b / "history.jsonl").read_text()


@pytest.mark.slow  # trains, is killed, trains again
def test_a_run_killed_mid_way_resumes_to_bit_identical_weights(start: Path, tmp_path: Path) -> None:
    epochs = 12
    runner = tmp_path / "run_finetune.py"
    runner.write_text(RUNNER)
    killed = tmp_path / "killed"
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, str(runner), *cli_args(start, killed, epochs)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not (killed / "epoch_001.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
    assert process.returncode == -signal.SIGKILL, stderr.decode()
    assert not (killed / "final.pt").exists(), "the run finished before it could be killed"
    done = sorted(p.name for p in killed.glob("epoch_*.pt"))
    assert "epoch_001.pt" in done and f"epoch_{epochs:03d}.pt" not in done

    resumed = invoke(*cli_args(start, killed, epochs), "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert not list(killed.glob(".*.tmp")), "temporary files of the killed write were left behind"
    uninterrupted(start, tmp_path / "whole", epochs)
    assert_identical(killed, tmp_path / "whole")


def test_resume_skips_a_damaged_checkpoint_and_drops_history_past_it(start: Path, tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    config = uninterrupted(start, whole, 3)
    broken = tmp_path / "broken"
    uninterrupted(start, broken, 3)
    (broken / "final.pt").unlink()
    data = (broken / "epoch_003.pt").read_bytes()
    (broken / "epoch_003.pt").write_bytes(data[: len(data) // 2])  # e.g. a copy cut short
    with (broken / "history.jsonl").open("a") as handle:
        handle.write('{"epoch": 4, "loss": 0.0}\n')
    result = finetune(FinetuneConfig(**(vars(config) | {"out": broken, "resume": True})))
    assert result.resumed_from == broken / "epoch_002.pt"
    assert any("epoch_003.pt" in note for note in result.notes)
    assert_identical(broken, whole)


def test_a_resumed_run_may_train_longer(start: Path, tmp_path: Path) -> None:
    uninterrupted(start, tmp_path / "short", 2)
    longer = invoke(*cli_args(start, tmp_path / "short", 3), "--resume")
    assert longer.exit_code == 0, longer.output
    uninterrupted(start, tmp_path / "whole", 3)
    assert_identical(tmp_path / "short", tmp_path / "whole")


def test_resume_without_a_checkpoint_exits_2(start: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert_bad_input(invoke(*cli_args(start, tmp_path / "empty", 2), "--resume"), "no complete epoch_XXX.pt")


def test_resume_with_another_architecture_exits_2_and_keeps_the_run(start: Path, tmp_path: Path) -> None:
    uninterrupted(start, tmp_path / "run", 1)
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    other = mlp_checkpoint(tmp_path / "other.pt", [20, 16])
    result = invoke(*cli_args(other, tmp_path / "run", 2), "--resume")
    assert_bad_input(result, "epoch_001.pt", "[24, 16]", "[20, 16]")
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before


def test_resume_with_other_settings_exits_2(start: Path, tmp_path: Path) -> None:
    uninterrupted(start, tmp_path / "run", 1)
    result = invoke(*cli_args(start, tmp_path / "run", 2, lr=0.5), "--resume")
    assert_bad_input(result, "settings differ", "lr 0.01 → 0.5")


def test_resume_with_another_label_smoothing_exits_2(start: Path, tmp_path: Path) -> None:
    """ε is a setting of the run: recorded when nonzero (a run at ε = 0 records no key, as runs did before
    the option existed, and resumes with the default)."""
    uninterrupted(start, tmp_path / "run", 1)
    settings = torch.load(tmp_path / "run" / "epoch_001.pt", weights_only=True)["settings"]
    assert "label_smoothing" not in settings
    result = invoke(*cli_args(start, tmp_path / "run", 2), "--label-smoothing", "0.1", "--resume")
    assert_bad_input(result, "settings differ", "label_smoothing None → 0.1")
    result = invoke(*cli_args(start, tmp_path / "run", 2), "--resume")
    assert result.exit_code == 0, result.output
