"""One output guard for every command (nc_audit/io/plan/outputs.py called by each command before it creates
anything): prune and the studies included, and nothing left behind by a run refused for its inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import mlp_checkpoint
from runs import assert_bad_input
from typer.testing import CliRunner, Result

from nc_audit.cli import app

pytestmark = pytest.mark.usefixtures("isolated_cli")


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(arg) for arg in args])


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_prune_of_a_bad_checkpoint_leaves_nothing_so_the_rerun_is_not_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    for _ in range(2):
        assert_bad_input(run("prune", bad, "--data", "digits", "--out", tmp_path / "run", "-q"), "bad.pt")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["prune", "m.pt", "--data", "digits", "--json", "m.pt"], ["--json m.pt", "the input m.pt"]),
        (["prune", "m.pt", "--data", "data.npz", "--markdown", "data.npz"], ["--markdown", "input data.npz"]),
        (["prune", "m.pt", "--data", "digits", "--plot", "X", "--json", "X"], ["--json X", "--plot"]),
        (["prune", "m.pt", "--data", "digits", "--out", "run", "--json", "run/study.json"], ["study.json"]),
        (
            ["study", "label-smoothing", "--data", "data.npz", "--plot", "data.npz"],
            ["--plot", "input data.npz"],
        ),
        (
            ["extract", "m.pt", "--data", "digits", "--model", "zoo.py:build", "--out", "zoo.py"],
            ["--model source"],
        ),
        (
            [
                "finetune",
                "m.pt",
                "--data",
                "digits",
                "--cma-weight",
                "0.1",
                "--html",
                "hf/config.json",
                "--out",
                "ft",
                "--features",
                "hf",
            ],
            ["hf/config.json", "input folder"],
        ),
    ],
)
def test_every_command_refuses_an_output_over_an_input_before_creating_anything(
    tmp_path: Path, args: list[str], fragments: list[str]
) -> None:
    mlp_checkpoint(tmp_path / "m.pt", hidden=[8])
    np.savez(tmp_path / "data.npz", inputs=np.zeros((20, 64), np.float32), labels=np.arange(20) % 10)
    (tmp_path / "zoo.py").write_text("def build(**kwargs):\n    raise SystemExit('never imported')\n")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    before = _files(tmp_path)
    assert_bad_input(run(*args, "-q"), *fragments)
    assert _files(tmp_path) == before
    assert not (tmp_path / "run").exists() and not (tmp_path / "ft").exists()
