"""`nc-audit prune`: sparsity 0 is `measure`, the kept share is the one asked for (global and per layer),
fine-tuning keeps the masks, and the command writes its table, JSON and plot and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from runs import SAMPLES, invoke, sample_checkpoints

from nc_audit.core.formats import PRUNING_SCHEMA
from nc_audit.experiments.prune import PruneSettings, run_pruning
from nc_audit.measurement.api import measure

pytestmark = pytest.mark.usefixtures("one_thread", "isolated_cli")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def last_sample() -> Path:
    return sample_checkpoints()[-1]


def prunable_counts(checkpoint: Path, include_head: bool = False) -> dict[str, tuple[int, int]]:
    """(non-zero, total) of every Linear weight of a saved MLP checkpoint (the head only if asked)."""
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    return {key: (int((value != 0).sum()), value.numel()) for key, value in state.items()
            if key.endswith("weight") and value.dim() == 2 and (include_head or not key.startswith("head."))}  # fmt: skip


def test_sparsity_zero_equals_measure(last_sample: Path, tmp_path: Path) -> None:
    document = run_pruning(last_sample, "digits", tmp_path / "p", PruneSettings(sparsities=(0.0, 0.5)))
    zero = document["records"][0]
    assert zero["sparsity"] == 0.0 and zero["kept"]["fraction"] == 1.0
    train = measure(last_sample, data="digits", cache_dir=tmp_path / "cache", device="cpu")
    test = measure(last_sample, data="digits", split="test", cache_dir=tmp_path / "cache", device="cpu")
    assert zero["report"]["metrics"] == train.to_dict()["metrics"]  # exactly: same weights, same kernels
    assert zero["accuracy"] == train.details["accuracy"]
    assert zero["test_accuracy"] == test.details["accuracy"]
    assert document["records"][1]["report"]["metrics"] != zero["report"]["metrics"]


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_the_kept_share_is_the_requested_one(last_sample: Path, tmp_path: Path, scope: str) -> None:
    sparsities = (0.3, 0.8, 0.95)
    document = run_pruning(
        last_sample, "digits", tmp_path / scope, PruneSettings(sparsities=sparsities, scope=scope)
    )
    for record, sparsity in zip(document["records"], sparsities, strict=True):
        counts = prunable_counts(Path(record["checkpoint"]))
        total = sum(n for _, n in counts.values())
        kept = sum(k for k, _ in counts.values())
        assert (
            record["kept"]["total"] == total == 3 * 64 * 64
        )  # three 64×64 Linear layers (64 → 64 → 64 → 64)
        if scope == "global":
            assert kept == record["kept"]["kept"] == total - round(sparsity * total)
        else:
            for key, (k, n) in counts.items():
                assert k == n - round(sparsity * n), key
        head = torch.load(record["checkpoint"], weights_only=True)["state_dict"]["head.weight"]
        assert bool((head != 0).all())  # the head stays dense by default


def test_fine_tuning_keeps_the_masks(last_sample: Path, tmp_path: Path) -> None:
    settings = PruneSettings(sparsities=(0.9,), finetune_epochs=1, include_head=True)
    tuned = run_pruning(last_sample, "digits", tmp_path / "tuned", settings)["records"][0]
    plain = run_pruning(
        last_sample, "digits", tmp_path / "plain", PruneSettings(sparsities=(0.9,), include_head=True)
    )
    a = torch.load(tuned["checkpoint"], weights_only=True)["state_dict"]
    b = torch.load(plain["records"][0]["checkpoint"], weights_only=True)["state_dict"]
    for key in ("body.1.weight", "body.4.weight", "body.7.weight", "head.weight"):
        assert torch.equal(a[key] == 0, b[key] == 0), key  # the same weights are zero after fine-tuning
        assert not torch.equal(a[key], b[key]), key  # and the kept ones moved
    assert len(tuned["finetune_losses"]) == 1 and tuned["kept"]["fraction"] == pytest.approx(0.1, abs=1e-3)


@pytest.mark.slow  # prunes and resumes through the CLI
def test_the_command_writes_table_json_plot_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ("prune", SAMPLES / "epoch_0300.pt", "--data", "digits", "--sparsities", "0,0.5,0.9", "--out", out)
    result = invoke(*args, "--json", tmp_path / "copy.json", "--plot", tmp_path / "p.png")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("| sparsity | kept | accuracy | test accuracy | NC1 |") and len(lines) == 5
    assert lines[2].startswith("| 0 | 1.0000 | 1.0000 |")
    assert [line.split("]")[0] for line in result.stderr.splitlines() if line.startswith("[")] == [
        "[1/3",
        "[2/3",
        "[3/3",
    ]
    document = json.loads((out / "pruning.json").read_text())
    assert (
        document["schema"] == PRUNING_SCHEMA and json.loads((tmp_path / "copy.json").read_text()) == document
    )
    assert (tmp_path / "p.png").read_bytes().startswith(PNG_MAGIC)
    assert "| 0.9 | 0.1000 |" in (out / "RESULTS.md").read_text()
    assert sorted(p.name for p in out.glob("sparsity_*.pt")) == [
        "sparsity_0.000.pt",
        "sparsity_0.500.pt",
        "sparsity_0.900.pt",
    ]

    again = invoke(*args)
    assert again.exit_code == 2 and "--resume" in again.stderr

    # a run killed after its first two sparsities: the records file holds them, the rest runs again
    runs = (out / "runs.jsonl").read_text().splitlines()
    (out / "runs.jsonl").write_text("\n".join(runs[:2]) + "\n")
    resumed = invoke(*args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    told = [line for line in resumed.stderr.splitlines() if line.startswith("[")]
    assert ["read back from runs.jsonl" in line for line in told] == [True, True, False]
    third = json.loads((out / "runs.jsonl").read_text().splitlines()[2])
    assert json.loads((out / "pruning.json").read_text())["records"] == [*document["records"][:2], third]
    assert third["report"]["metrics"] == document["records"][2]["report"]["metrics"]

    other = invoke(
        "prune",
        SAMPLES / "epoch_0300.pt",
        "--data",
        "digits",
        "--sparsities",
        "0,0.5",
        "--out",
        out,
        "--resume",
    )
    assert other.exit_code == 2 and "settings differ" in other.stderr and "sparsities" in other.stderr


def test_bad_sparsities_exit_2(tmp_path: Path) -> None:
    for text, fragment in (("0,1", "[0, 1)"), ("0,x", "comma-separated"), ("0.5,0.5", "each sparsity once")):
        result = invoke(
            "prune",
            SAMPLES / "epoch_0300.pt",
            "--data",
            "digits",
            "--sparsities",
            text,
            "--out",
            tmp_path / text,
        )
        assert result.exit_code == 2 and fragment in result.stderr, (text, result.output)
