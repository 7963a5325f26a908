"""Shard indexes of Hugging Face folders (nc_audit/io/checkpoints/shard_index.py): every shard a plain file inside the
folder, the index bounded; refused otherwise, naming the index and the shard."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints import shard_index
from nc_audit.io.checkpoints.hf_folder import weight_files

INDEX = "model.safetensors.index.json"


def _folder(tmp_path: Path, *shards: object) -> Path:
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (folder / INDEX).write_text(json.dumps({"weight_map": {f"t{i}": s for i, s in enumerate(shards)}}))
    return folder


def test_shards_inside_the_folder_are_its_weight_files(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "a.safetensors", "sub/b.safetensors", "a.safetensors", "alias.safetensors")
    (folder / "a.safetensors").write_bytes(b"x")
    (folder / "sub").mkdir()
    (folder / "sub" / "b.safetensors").write_bytes(b"y")
    os.symlink(folder / "a.safetensors", folder / "alias.safetensors")  # a link that stays inside
    names = [p.relative_to(folder).as_posix() for p in weight_files(folder)]
    assert names == ["a.safetensors", "alias.safetensors", "sub/b.safetensors"]


@pytest.mark.parametrize(
    ("shard", "message"),
    [
        ("../outside/x", "climbs out of the folder"),
        ("sub/../../outside/x", "climbs out of the folder"),
        ("/etc/passwd", "is an absolute path"),
        ("link", "leads out of the folder through a symbolic link"),
        ("fifo", r"is not a regular file \(a FIFO"),
        ("missing.safetensors", "is missing beside it"),
        (7, "is not a file name"),
        ("", "is not a file name"),
    ],
)
def test_shards_outside_or_not_plain_files_are_refused(tmp_path: Path, shard: object, message: str) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x").write_bytes(b"weights outside")
    folder = _folder(tmp_path, shard)
    os.symlink(tmp_path / "outside" / "x", folder / "link")
    os.mkfifo(folder / "fifo")
    with pytest.raises(InputError, match=rf"{INDEX}: shard .*{message}"):
        weight_files(folder)


def test_the_index_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _folder(tmp_path, *[f"s{i}.safetensors" for i in range(20)])
    monkeypatch.setattr(shard_index, "MAX_SHARDS", 10)
    with pytest.raises(InputError, match=r"names 20 shard files \(at most 10\)"):
        weight_files(folder)
    monkeypatch.setattr(shard_index, "MAX_INDEX_BYTES", 64)
    with pytest.raises(InputError, match=INDEX):
        weight_files(folder)
    (folder / INDEX).write_text(json.dumps(["not", "an", "index"]))
    with pytest.raises(InputError, match=r"not a readable shard index"):
        weight_files(folder)
