"""`nc-audit extract` and `nc-audit measure --data` from the command line (docs/DESIGN.md, Command line).

Bad input ends in exit code 2 and one line on stderr that says what is wrong and what to do, with no
traceback and no dump written; a killed extraction never leaves a file under the requested name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import runs
import torch
from typer.testing import CliRunner, Result

from nc_audit.cli import app
from nc_audit.core.formats import ARCH_FORMAT
from nc_audit.io.checkpoints.save import save_checkpoint
from nc_audit.models.extract import extract
from nc_audit.models.registry import architecture_record, build_model

NC_AUDIT = Path(sys.executable).parent / "nc-audit"


@pytest.fixture(autouse=True)
def isolated_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in tmp_path with the cache there, no CI step summary, no --debug."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NC_AUDIT_CACHE", str(tmp_path / "cache"))
    for name in ("GITHUB_STEP_SUMMARY", "NC_AUDIT_DEBUG"):
        monkeypatch.delenv(name, raising=False)


def digits_record(hidden: list[int] | None = None) -> dict:
    return architecture_record("mlp", {"input_dim": 64, "hidden": hidden or [24, 16]}, 10)


def save_mlp(path: Path, hidden: list[int] | None = None) -> Path:
    """A small self-describing MLP checkpoint for 64 inputs and 10 classes."""
    torch.manual_seed(0)
    record = digits_record(hidden)
    return save_checkpoint(path, build_model(record).state_dict(), record)


def run(command: str, checkpoint: Path, data: str, *extra: str | Path) -> Result:
    """`extract CKPT --data DATA --out out.h5` or `measure CKPT --data DATA`, quietly, on the CPU."""
    args = ["--data", data, "--no-progress", "--device", "cpu", *map(str, extra)]
    if command == "extract":
        args += ["--out", "out.h5"]
    return CliRunner().invoke(app, [command, str(checkpoint), *args])


def assert_bad_input(result: Result, *fragments: str) -> str:
    """:func:`runs.assert_bad_input`, and no dump at --out."""
    line = runs.assert_bad_input(result, *fragments)
    assert not Path("out.h5").exists()
    return line


COMMANDS = pytest.mark.parametrize("command", ["extract", "measure"])


# --- it works ---------------------------------------------------------------------------------------------
def test_extract_writes_the_dump_and_says_where(tmp_path: Path) -> None:
    checkpoint = save_mlp(tmp_path / "model.pt")
    result = run("extract", checkpoint, "gaussian:dim=64,samples=300", "--split", "test")
    assert result.exit_code == 0, result.output
    assert "wrote out.h5" in result.stderr
    with h5py.File(tmp_path / "out.h5", "r") as handle:
        assert sorted(handle) == ["head", "test"]
        assert handle["test/features"].shape == (300, 16)


def test_measure_dump_alone_with_split_test_names_both_splits(tmp_path: Path) -> None:
    dump = extract(save_mlp(tmp_path / "model.pt"), "gaussian:dim=64,samples=300", tmp_path / "dump.h5")
    result = CliRunner().invoke(
        app, ["measure", str(dump), "--split", "test", "--format", "json", "--no-progress", "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["conventions"]["means_split"] == "train"
    assert report["conventions"]["decisions_split"] == "test"
    assert report["features"]["split"] == "test"


# --- bad input ------------------------------------------------------------------------------------------
@COMMANDS
def test_unknown_dataset_name(command: str, tmp_path: Path) -> None:
    assert_bad_input(
        run(command, save_mlp(tmp_path / "model.pt"), "imagenet"), "unknown dataset 'imagenet'", "digits"
    )


@COMMANDS
def test_unknown_model_name_in_the_architecture_record(command: str, tmp_path: Path) -> None:
    record = {"format": ARCH_FORMAT, "name": "resnet50", "config": {}, "num_classes": 10, "head": "head"}
    state = build_model(digits_record()).state_dict()
    checkpoint = save_checkpoint(tmp_path / "model.pt", state, record)
    assert_bad_input(run(command, checkpoint, "digits"), "unknown architecture 'resnet50'", "mlp")


@COMMANDS
def test_a_model_factory_that_cannot_be_imported(command: str, tmp_path: Path) -> None:
    bare = tmp_path / "bare.pt"
    torch.save(build_model(digits_record()).state_dict(), bare)
    result = run(command, bare, "digits", "--model", "no_such_package.models:build")
    assert_bad_input(result, "--model no_such_package.models:build", "no_such_package")


@COMMANDS
def test_a_checkpoint_without_architecture_record_and_no_model_option(command: str, tmp_path: Path) -> None:
    bare = tmp_path / "bare.pt"
    torch.save(build_model(digits_record()).state_dict(), bare)
    assert_bad_input(run(command, bare, "digits"), "bare.pt", "does not say which architecture", "--model")


@COMMANDS
def test_a_state_dict_that_does_not_fit_the_architecture_lists_the_keys(command: str, tmp_path: Path) -> None:
    state = build_model(digits_record()).state_dict()  # body.1 (64→24), body.3 (24→16), head
    state["body.9.weight"] = state.pop("body.3.bias")
    checkpoint = save_checkpoint(tmp_path / "model.pt", state, digits_record())
    assert_bad_input(
        run(command, checkpoint, "digits"),
        "model.pt",
        "missing key(s) (body.3.bias)",
        "unexpected key(s) (body.9.weight)",
    )


@COMMANDS
def test_labels_beyond_the_heads_classes(command: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mine.npz", inputs=rng.normal(size=(39, 64)), labels=np.arange(39) % 13)
    checkpoint = save_mlp(tmp_path / "model.pt")
    assert_bad_input(run(command, checkpoint, "mine.npz"), "labels go up to 12", "10 classes")


@COMMANDS
def test_a_user_data_file_without_inputs_and_labels_names_the_keys_it_has(
    command: str, tmp_path: Path
) -> None:
    np.savez(tmp_path / "mine.npz", x=np.zeros((4, 64)), y=np.zeros(4, dtype=np.int64))
    checkpoint = save_mlp(tmp_path / "model.pt")
    assert_bad_input(run(command, checkpoint, "mine.npz"), "mine.npz", "inputs", "labels", "it has: x, y")


@pytest.mark.parametrize(
    ("command", "fragments"),
    [("extract", ("--split val", "train, test")), ("measure", ("'val'", "train"))],
)
def test_a_split_the_dataset_does_not_have(command: str, fragments: tuple[str, ...], tmp_path: Path) -> None:
    checkpoint = save_mlp(tmp_path / "model.pt")
    assert_bad_input(run(command, checkpoint, "gaussian:dim=64,samples=200", "--split", "val"), *fragments)


@COMMANDS
def test_a_pickled_whole_model_is_refused_with_how_to_save_a_state_dict(command: str, tmp_path: Path) -> None:
    pickled = tmp_path / "whole.pt"
    torch.save(build_model(digits_record()), pickled)
    assert_bad_input(run(command, pickled, "digits"), "whole.pt", "torch.save(model.state_dict(), PATH)")


# --- a killed extraction ----------------------------------------------------------------------------------
@pytest.mark.slow  # extracts until killed
def test_a_killed_extraction_leaves_no_dump_under_the_final_name(tmp_path: Path) -> None:
    checkpoint = save_mlp(tmp_path / "model.pt", hidden=[32])
    out_folder = tmp_path / "out"
    out_folder.mkdir()
    out = out_folder / "big.h5"
    command = [str(NC_AUDIT), "extract", str(checkpoint), "--data", "gaussian:samples=200000,dim=64", "--out",
               str(out), "--batch-size", "128", "--device", "cpu", "--no-progress"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 120
        temporaries: list[Path] = []
        while not any(p.stat().st_size > 0 for p in temporaries if p.exists()):
            assert process.poll() is None, (
                f"extraction ended before it could be killed: {process.communicate()}"
            )
            assert time.monotonic() < deadline, "no temporary dump appeared"
            time.sleep(0.05)
            temporaries = list(out_folder.glob(".big.h5.*.tmp"))
        assert process.poll() is None, "the extraction finished before the kill; use a larger dataset"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()  # type: ignore[union-attr]
        process.stderr.close()  # type: ignore[union-attr]
    assert process.returncode == -signal.SIGKILL
    assert not out.exists()
    left = [p.name for p in out_folder.iterdir()]
    assert all(name.startswith(".big.h5.") and name.endswith(".tmp") for name in left), left
