"""`track --task next-token`: a trajectory of causal LM checkpoints (a Trainer's checkpoint-N folders,
two tiny GPT-2s built locally) measured on one corpus, each record equal to `measure --task next-token`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from tiny_lm import build
from transformers import GPT2LMHeadModel
from typer.testing import CliRunner, Result

from nc_audit.cli import app
from nc_audit.measurement.next_token_folders import language_model_folders, order_folders

pytestmark = pytest.mark.usefixtures("one_thread")


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [*map(str, args), "--no-progress"])


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(output_dir with checkpoint-20/ and checkpoint-3/, corpus): one tiny GPT-2 and its tokenizer, the
    later checkpoint the same model with its final block's MLP perturbed (a different model)."""
    root = tmp_path_factory.mktemp("run")
    folder, corpus = build(root / "build", "gpt2")
    output_dir = root / "output_dir"
    output_dir.mkdir()
    shutil.copytree(folder, output_dir / "checkpoint-3")
    later = output_dir / "checkpoint-20"
    shutil.copytree(folder, later)
    model = GPT2LMHeadModel.from_pretrained(later)
    with torch.no_grad():
        weight = model.transformer.h[-1].mlp.c_fc.weight
        weight.add_(0.5 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)))
    model.save_pretrained(later)
    return output_dir, corpus


def test_track_next_token_measures_each_checkpoint_in_step_order(
    run: tuple[Path, Path], tmp_path: Path
) -> None:
    output_dir, corpus = run
    cache = tmp_path / "cache"
    result = invoke(
        "track", output_dir, "--task", "next-token", "--data", corpus, "--context", "32",
        "--cache-dir", cache, "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)["records"]
    assert [record["step"] for record in records] == [3, 20]  # checkpoint-3 before checkpoint-20
    assert records[0]["metrics"] != records[1]["metrics"]  # two different models
    single = invoke(
        "measure", output_dir / "checkpoint-20", "--task", "next-token", "--data", corpus, "--context", "32",
        "--cache-dir", cache, "--format", "json",
    )  # fmt: skip
    assert single.exit_code == 0, single.output
    alone = json.loads(single.stdout)["metrics"]
    for key, value in records[1]["metrics"].items():
        assert value == pytest.approx(alone[key], rel=1e-9, abs=1e-12), key


def test_track_next_token_refuses_what_is_not_a_model_folder(run: tuple[Path, Path], tmp_path: Path) -> None:
    _, corpus = run
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("track", empty, "--task", "next-token", "--data", corpus)
    assert result.exit_code == 2
    assert "empty" in result.output and "causal language model folder" in result.output
    assert "Traceback" not in result.output
    result = invoke("track", corpus, "--task", "next-token", "--data", corpus)
    assert result.exit_code == 2 and "not one" in result.output


def test_model_folders_are_found_and_ordered_by_step(tmp_path: Path) -> None:
    """A Trainer's output_dir: checkpoint-9 before checkpoint-10 (by step, not by text); a folder
    without config.json and a linked model folder inside it are not taken."""
    run = tmp_path / "output_dir"
    for name in ("checkpoint-10", "checkpoint-9", "logs"):
        (run / name).mkdir(parents=True)
    for name in ("checkpoint-10", "checkpoint-9"):
        (run / name / "config.json").write_text("{}")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "config.json").write_text("{}")
    (run / "checkpoint-11").symlink_to(elsewhere)
    found = order_folders(language_model_folders([run]))
    assert [(folder.name, step) for folder, step in found] == [("checkpoint-9", 9), ("checkpoint-10", 10)]
