"""Hugging Face ``save_pretrained`` folders read as files: config.json and the weights, safely.

A folder with ``config.json`` (holding ``model_type`` or ``architectures``) and ``model.safetensors``
(or ``pytorch_model.bin``, or a sharded ``*.index.json`` of either) is a Hugging Face checkpoint; so is
such a weights file given directly, with its config.json beside it. This module reads the tensors as
stored (safetensors, or ``torch.load(weights_only=True)``) and the config as plain JSON, without
importing transformers: enough to find the head and hash the files. Running the model — with the key
renaming transformers applies on load — is :mod:`nc_audit.models.huggingface`'s job.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from nc_audit.core.errors import InputError, first_line
from nc_audit.io.checkpoints.container import check_checkpoint_file
from nc_audit.io.checkpoints.shard_index import shard_files
from nc_audit.io.guards.files import load_json

CONFIG_NAME = "config.json"
#: Largest config.json read (real ones are kilobytes; a 60 MB one took gigabytes to parse).
MAX_CONFIG_BYTES = 4 * 2**20
#: Weight files of a save_pretrained folder, in the order transformers prefers them.
WEIGHT_NAMES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def _hf_config(folder: Path) -> dict[str, Any] | None:
    path = folder / CONFIG_NAME
    if not path.is_file():
        return None
    if (size := path.stat().st_size) > MAX_CONFIG_BYTES:
        raise InputError(
            f"{path}: config.json is {size / 2**20:.1f} MiB (at most {MAX_CONFIG_BYTES // 2**20} MiB for a model "
            "config); nc-audit does not read it"
        )
    try:
        config = load_json(
            path, "config.json", MAX_CONFIG_BYTES
        )  # a regular file, bounded in depth and digits
    except InputError:
        return None
    if isinstance(config, dict) and ("model_type" in config or "architectures" in config):
        return config
    return None


def hf_folder(path: Path) -> Path | None:
    """The save_pretrained folder ``path`` is, or whose weights file it is; None for anything else."""
    if path.is_dir():
        folder = path
    elif path.is_file() and path.name in WEIGHT_NAMES:
        folder = path.parent
    else:
        return None
    if _hf_config(folder) is None or not any((folder / name).is_file() for name in WEIGHT_NAMES):
        return None
    return folder


def read_config(folder: Path) -> dict[str, Any]:
    """config.json of a save_pretrained folder as plain data."""
    config = _hf_config(folder)
    if config is None:
        raise InputError(f"{folder}: no readable config.json with model_type or architectures")
    return config


def config_num_labels(config: dict[str, Any]) -> int | None:
    """The number of classes a Hugging Face config declares (id2label, else num_labels)."""
    labels = config.get("id2label")
    if isinstance(labels, dict) and labels:
        return len(labels)
    value = config.get("num_labels")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def weight_files(folder: Path) -> list[Path]:
    """The files holding the folder's tensors (every shard of a sharded checkpoint)."""
    for name in WEIGHT_NAMES:
        path = folder / name
        if not path.is_file():
            continue
        if not name.endswith(".index.json"):
            return [path]
        return shard_files(path)  # plain files inside the folder, the index bounded
    raise InputError(f"{folder}: no weights ({', '.join(WEIGHT_NAMES)})")


def folder_sha256(folder: Path, file_digest: Any) -> str:
    """One digest of config.json and every weight file (name and content), so a changed file changes it."""
    digest = hashlib.sha256()
    for path in [folder / CONFIG_NAME, *weight_files(folder)]:
        digest.update(f"{path.name}\0{file_digest(path)}\n".encode())
    return digest.hexdigest()


def read_hf_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the folder's weights, by stored name (safetensors, or weights_only torch.load)."""
    state: dict[str, torch.Tensor] = {}
    for path in weight_files(folder):
        check_checkpoint_file(path)  # a regular file; a .bin container checked before torch.load
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state.update(load_file(str(path), device="cpu"))
            else:
                loaded = torch.load(path, map_location="cpu", weights_only=True)
                state.update({k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)})
        except InputError:
            raise
        except Exception as error:  # a damaged file of any kind: one line naming it
            raise InputError(f"{path}: not readable weights ({first_line(error)})") from None
    if not state:
        raise InputError(f"{folder}: the weights hold no tensors")
    return state
