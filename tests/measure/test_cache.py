"""The feature cache of `measure --data`: one extraction per (checkpoint bytes, dataset, splits, factory).

A second measurement of the same checkpoint on the same data runs no forward pass and gives the same
report; different checkpoint bytes miss. The folder is $NC_AUDIT_CACHE, else $XDG_CACHE_HOME/nc-audit,
else ~/.cache/nc-audit, and ``cache_dir`` / ``--cache-dir`` override it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner, Result

import nc_audit.models.extract as extract_module
from nc_audit.cli import app
from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints.save import save_checkpoint
from nc_audit.measurement.api import measure
from nc_audit.measurement.cache import cache_path, default_cache_dir
from nc_audit.models.builtins import MLP
from nc_audit.models.registry import architecture_record, build_model
from nc_audit.models.spec import ModelSpec
from nc_audit.report.model import Report

SHA = "ab" * 32


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No cache outside tmp_path, no CI step summary, no --debug."""
    monkeypatch.chdir(tmp_path)
    for name in (
        "NC_AUDIT_CACHE",
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
        "GITHUB_STEP_SUMMARY",
        "NC_AUDIT_DEBUG",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NC_AUDIT_CACHE_KEY", str(tmp_path / "keys" / "cache.key"))


def save_mlp(path: Path, seed: int = 0) -> Path:
    """A small self-describing digits MLP checkpoint (save_checkpoint)."""
    torch.manual_seed(seed)
    record = architecture_record("mlp", {"input_dim": 64, "hidden": [24]}, 10)
    return save_checkpoint(path, build_model(record).state_dict(), record)


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    return save_mlp(tmp_path / "model.pt")


def forbid_forward_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, any extraction or forward pass of an MLP fails the test."""

    def no_extraction(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("extract ran although the cache holds the dump")

    def no_forward(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a forward pass ran although the cache holds the dump")

    monkeypatch.setattr(extract_module, "extract", no_extraction)
    monkeypatch.setattr(MLP, "forward", no_forward)


def cache_entry(report: Report) -> dict[str, Any]:
    return report.details["feature_cache"]


# --- hits and misses (library) ------------------------------------------------------------------------
def test_a_second_measure_reads_the_cache_without_a_forward_pass(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    first = measure(checkpoint, data="digits", cache_dir=cache, device="cpu")
    assert cache_entry(first)["hit"] is False
    assert Path(cache_entry(first)["path"]).parent == cache
    forbid_forward_passes(monkeypatch)
    second = measure(checkpoint, data="digits", cache_dir=cache, device="cpu")
    assert cache_entry(second) == {"path": cache_entry(first)["path"], "hit": True}
    assert second.metrics == first.metrics
    assert second.details["accuracy"] == first.details["accuracy"]
    assert second.details["dataset"] == first.details["dataset"] == "digits:layout=flat"


def test_equivalent_dataset_specs_and_a_copied_checkpoint_share_one_entry(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key is the checkpoint's bytes and the canonical dataset spec, not the file name or spelling."""
    cache = tmp_path / "cache"
    first = measure(checkpoint, data="digits", cache_dir=cache, device="cpu")
    copy = shutil.copy(checkpoint, tmp_path / "renamed.pt")
    forbid_forward_passes(monkeypatch)
    again = measure(copy, data="digits:layout=flat", cache_dir=cache, device="cpu")
    assert cache_entry(again) == {"path": cache_entry(first)["path"], "hit": True}
    assert again.checkpoint["path"] == str(copy)
    assert again.metrics == first.metrics


def test_a_checkpoint_with_different_bytes_misses_the_cache(checkpoint: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = measure(checkpoint, data="digits", cache_dir=cache, device="cpu")
    save_mlp(checkpoint, seed=1)  # same path, other weights
    second = measure(checkpoint, data="digits", cache_dir=cache, device="cpu")
    assert cache_entry(second)["hit"] is False
    assert cache_entry(second)["path"] != cache_entry(first)["path"]
    assert second.metrics["nc1"] != first.metrics["nc1"]
    assert len(list(cache.glob("*.h5"))) == 2


def test_another_dataset_misses_the_cache(checkpoint: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    measure(checkpoint, data="digits", cache_dir=cache, device="cpu")
    other = measure(checkpoint, data="gaussian:dim=64,samples=200", cache_dir=cache, device="cpu")
    assert cache_entry(other)["hit"] is False
    assert other.details["dataset"].startswith("gaussian:")


def test_another_head_misses_the_cache(tmp_path: Path) -> None:
    """The dump holds the chosen head's input, so --head is part of the key: a measurement with the
    default head after one with head='body.3' must not be served body.3's features."""
    torch.manual_seed(0)
    record = architecture_record("mlp", {"input_dim": 64, "hidden": [24, 10]}, 10)  # body.3: Linear(24, 10)
    checkpoint = save_checkpoint(tmp_path / "two-heads.pt", build_model(record).state_dict(), record)
    cache = tmp_path / "cache"
    inner = measure(checkpoint, data="digits", cache_dir=cache, head="body.3", device="cpu")
    assert (inner.checkpoint["head"], inner.features["feature_dim"]) == ("body.3", 24)
    default = measure(checkpoint, data="digits", cache_dir=cache, device="cpu")
    assert (default.checkpoint["head"], default.features["feature_dim"]) == ("head", 10)
    assert cache_entry(default)["hit"] is False


def test_cache_path_depends_on_every_part_of_the_key_and_not_on_split_order(tmp_path: Path) -> None:
    base = cache_path(tmp_path, SHA, "digits:layout=flat", ["train", "test"])
    assert base.parent == tmp_path and base.suffix == ".h5"
    assert base == cache_path(tmp_path, SHA, "digits:layout=flat", ["test", "train"])
    others = {
        cache_path(tmp_path, "cd" * 32, "digits:layout=flat", ["train", "test"]),
        cache_path(tmp_path, SHA, "digits:layout=image", ["train", "test"]),
        cache_path(tmp_path, SHA, "digits:layout=flat", ["train"]),
        cache_path(tmp_path, SHA, "digits:layout=flat", ["train", "test"], ModelSpec("models.py:build")),
        cache_path(tmp_path, SHA, "digits:layout=flat", ["train", "test"], ModelSpec("m.py:b", ("width=9",))),
        cache_path(tmp_path, SHA, "digits:layout=flat", ["train", "test"], ModelSpec(head="body.3")),
    }
    assert base not in others and len(others) == 6
    # where the features were computed is not part of the key: they are the same features
    assert base == cache_path(
        tmp_path, SHA, "digits:layout=flat", ["train", "test"], ModelSpec(device="cuda")
    )


# --- where the cache lives --------------------------------------------------------------------------------
def test_default_cache_dir_prefers_nc_audit_cache_then_xdg_then_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "nc-audit"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "nc-audit"
    monkeypatch.setenv("NC_AUDIT_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"


def test_measure_without_cache_dir_uses_nc_audit_cache(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NC_AUDIT_CACHE", str(tmp_path / "env-cache"))
    report = measure(checkpoint, data="digits", device="cpu")
    assert Path(cache_entry(report)["path"]).parent == tmp_path / "env-cache"
    assert not (tmp_path / "home").exists()


def test_an_unusable_cache_dir_is_bad_input_naming_it(checkpoint: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(InputError, match=r"not-a-folder.*cannot create the feature cache"):
        measure(checkpoint, data="digits", cache_dir=blocker / "cache", device="cpu")


# --- the CLI ----------------------------------------------------------------------------------------------
def measure_json(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(
        app, ["measure", *map(str, args), "--format", "json", "--no-progress", "--device", "cpu"], env=env
    )


def cache_of(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, (result.exit_code, result.output)
    return json.loads(result.stdout)["details"]["feature_cache"]


def test_cli_cache_dir_option_holds_the_dump_and_the_second_run_hits(
    checkpoint: Path, tmp_path: Path
) -> None:
    first = cache_of(measure_json(checkpoint, "--data", "digits", "--cache-dir", tmp_path / "cli-cache"))
    second = cache_of(measure_json(checkpoint, "--data", "digits", "--cache-dir", tmp_path / "cli-cache"))
    assert first["hit"] is False and second["hit"] is True
    assert Path(first["path"]).parent == tmp_path / "cli-cache" == Path(second["path"]).parent


def test_cli_nc_audit_cache_environment_variable_sets_the_folder(checkpoint: Path, tmp_path: Path) -> None:
    entry = cache_of(
        measure_json(checkpoint, "--data", "digits", env={"NC_AUDIT_CACHE": str(tmp_path / "env")})
    )
    assert Path(entry["path"]).parent == tmp_path / "env"


@pytest.mark.parametrize("damage", ["truncated", "symlink"])
def test_a_damaged_cache_entry_is_rebuilt_and_said_so(checkpoint: Path, tmp_path: Path, damage: str) -> None:
    """A truncated entry (or a planted symlink) is a cache problem: the report says it was rebuilt, the
    rebuilt entry is a regular file, and the next run reuses it."""
    cache = tmp_path / "cache"
    first = measure(checkpoint, data="digits", cache_dir=cache)
    (entry,) = cache.glob("*.h5")
    if damage == "truncated":
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 3])
    else:
        outside = tmp_path / "outside.h5"
        entry.rename(outside)
        entry.symlink_to(outside)
    rebuilt = measure(checkpoint, data="digits", cache_dir=cache)
    assert rebuilt.details["feature_cache"]["hit"] is False
    assert any("feature cache entry" in note and "rebuilt" in note for note in rebuilt.notes)
    assert entry.is_file() and not entry.is_symlink()
    assert rebuilt.metrics == first.metrics
    again = measure(checkpoint, data="digits", cache_dir=cache)
    assert again.details["feature_cache"]["hit"] is True and not any("rebuilt" in n for n in again.notes)
