"""``[tool.nc-audit]`` defaults hold for every command that has the option (README: "defaults for every
run"): ``device`` for measure, track, extract, finetune, interpolate and prune; ``format`` for measure,
track, interpolate and prune. A flag given on the command line wins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from runs import SAMPLES, assert_bad_input
from typer.testing import CliRunner, Result

from nc_audit.cli import app

pytestmark = pytest.mark.usefixtures("isolated_cli")

A, B = SAMPLES / "epoch_0001.pt", SAMPLES / "epoch_0300.pt"
#: One cheap run of each command that has --device (run in the folder of the pyproject.toml).
DEVICE_RUNS = {
    "measure": [str(B), "--features", str(B.with_suffix(".h5"))],
    "track": [str(A), str(B)],
    "extract": [str(B), "--data", "digits", "--out", "out.h5"],
    "finetune": [str(B), "--data", "digits", "--cma-weight", "0.1", "--epochs", "1", "--out", "run"],
    "interpolate": [str(A), str(B), "--data", "digits", "--steps", "2"],
    "prune": [str(B), "--data", "digits", "--sparsities", "0", "--out", "pruned"],
}


def _invoke(command: str, *args: str) -> Result:
    return CliRunner().invoke(app, [command, *args, "--no-progress"])


def _project(folder: Path, **settings: str) -> None:
    lines = ["[tool.nc-audit]", *(f"{key} = {json.dumps(value)}" for key, value in settings.items())]
    (folder / "pyproject.toml").write_text("\n".join(lines) + "\n")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA: device = cuda must fail")
@pytest.mark.parametrize("command", sorted(DEVICE_RUNS))
def test_the_project_device_holds_for_every_command_with_device(command: str, tmp_path: Path) -> None:
    _project(tmp_path, device="cuda")
    assert_bad_input(_invoke(command, *DEVICE_RUNS[command]), "no CUDA device is available")
    assert [path.name for path in tmp_path.iterdir()] == ["pyproject.toml"]  # refused before any write


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA: device = cuda must fail")
def test_the_device_flag_wins_over_the_project(tmp_path: Path) -> None:
    _project(tmp_path, device="cuda")
    result = _invoke("extract", *DEVICE_RUNS["extract"], "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.h5").is_file()


@pytest.mark.parametrize("command", ["interpolate", pytest.param("prune", marks=pytest.mark.slow)])
def test_the_project_format_holds_for_interpolate_and_prune(command: str, tmp_path: Path) -> None:
    _project(tmp_path, format="json")
    result = _invoke(command, *DEVICE_RUNS[command], "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["schema"].startswith("nc-audit-")


def test_the_format_flag_wins_over_the_project(tmp_path: Path) -> None:
    _project(tmp_path, format="json")
    table = _invoke("interpolate", *DEVICE_RUNS["interpolate"], "--device", "cpu", "--format", "markdown")
    assert table.exit_code == 0, table.output
    assert table.stdout.startswith("#") and "| α |" in table.stdout
