"""Splits: ``--means-split test`` measures every metric with the held-out split's own class means (the
default stays Papyan's protocol: train means, held-out decisions); the README's CI example with a plain
``val.npz`` works as written; split errors name the user's file, and typos get "did you mean"."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import make_random_problem
from typer.testing import CliRunner, Result

from nc_audit.cli import app
from nc_audit.io.checkpoints.save import save_checkpoint
from nc_audit.measurement.api import measure
from nc_audit.models.registry import architecture_record, build_model


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NC_AUDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["measure", *map(str, args), "--no-progress"])


@pytest.fixture
def two_splits(tmp_path: Path) -> tuple[Path, Path]:
    """A dump with train and test groups (different problems) and the test group alone, head stored."""
    train, test = make_random_problem(seed=1), make_random_problem(seed=2)
    both, alone = tmp_path / "both.h5", tmp_path / "test_alone.h5"
    with h5py.File(both, "w") as f, h5py.File(alone, "w") as g:
        for split, problem in (("train", train), ("test", test)):
            f[f"{split}/features"], f[f"{split}/labels"] = problem.features, problem.labels
        g["features"], g["labels"] = test.features, test.labels
        for handle in (f, g):
            handle["head/weight"], handle["head/bias"] = train.W, train.b
    return both, alone


def test_means_split_test_gives_the_held_out_features_own_geometry(two_splits: tuple[Path, Path]) -> None:
    both, alone = two_splits
    papyan = measure(both, split="test")
    own = measure(both, split="test", means_split="test")
    reference = measure(alone)  # the test features measured on their own
    assert papyan.features["means_split"] == "train" and own.features["means_split"] == "test"
    assert own.metrics == pytest.approx(reference.metrics, rel=1e-12, abs=1e-14)
    assert papyan.metrics["nc1"] != pytest.approx(own.metrics["nc1"], rel=1e-3)  # not the same numbers
    result = invoke(both, "--split", "test", "--means-split", "test", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["conventions"]["means_split"] == "test" and report["metrics"]["nc1"] == pytest.approx(
        reference.metrics["nc1"], rel=1e-12
    )


def test_the_readme_ci_example_works_with_a_plain_val_npz(tmp_path: Path) -> None:
    """``--data data/val.npz --split test`` with inputs/labels at the root: the file is the test split."""
    (tmp_path / "data").mkdir()
    (tmp_path / "runs" / "pr").mkdir(parents=True)
    (tmp_path / "reports").mkdir()
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data" / "val.npz", inputs=rng.normal(size=(120, 64)).astype(np.float32),
             labels=np.arange(120) % 10)  # fmt: skip
    record = architecture_record("mlp", {"input_dim": 64, "hidden": [16]}, 10)
    save_checkpoint(tmp_path / "runs" / "pr" / "final.pt", build_model(record).state_dict(), record)
    result = invoke("runs/pr/final.pt", "--data", "data/val.npz", "--split", "test", "--fail-on", "nc1>=0",
                    "--json", "reports/pr.json", "--junit", "reports/pr.xml")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "reports" / "pr.json").read_text())
    assert report["features"]["split"] == "test" and report["features"]["num_samples"] == 120
    assert report["features"]["means_split"] == "test"  # no train split: the file's own means
    assert f"(value {report['metrics']['nc1']:.6g})" in result.stdout


def test_split_errors_name_the_users_file_not_the_cache(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "grouped.npz", **{"train/inputs": rng.normal(size=(20, 64)).astype(np.float32),
             "train/labels": np.arange(20) % 10, "val/inputs": rng.normal(size=(20, 64)).astype(np.float32),
             "val/labels": np.arange(20) % 10})  # fmt: skip
    record = architecture_record("mlp", {"input_dim": 64, "hidden": [16]}, 10)
    save_checkpoint(tmp_path / "m.pt", build_model(record).state_dict(), record)
    result = invoke("m.pt", "--data", "grouped.npz", "--split", "test")
    assert result.exit_code == 2
    assert "grouped.npz has no split 'test'" in result.stderr and "train, val" in result.stderr
    assert "cache" not in result.stderr
    typo = invoke("m.pt", "--data", "grouped.npz", "--split", "vall")
    assert "did you mean 'val'?" in typo.stderr
    means = invoke("m.pt", "--data", "grouped.npz", "--means-split", "test")
    assert means.exit_code == 2 and "--means-split test: grouped.npz has no such split" in means.stderr


def test_data_typos_get_did_you_mean(tmp_path: Path) -> None:
    record = architecture_record("mlp", {"input_dim": 64, "hidden": [16]}, 10)
    save_checkpoint(tmp_path / "m.pt", build_model(record).state_dict(), record)
    np.savez(tmp_path / "val.npz", inputs=np.zeros((4, 64), np.float32), labels=np.arange(4))
    assert "did you mean 'digits'?" in invoke("m.pt", "--data", "digts").stderr
    assert "did you mean 'val.npz'?" in invoke("m.pt", "--data", "vla.npz").stderr
    head = invoke("m.pt", "--data", "digits", "--head", "haed")
    assert head.exit_code == 2 and "did you mean 'head'?" in head.stderr
