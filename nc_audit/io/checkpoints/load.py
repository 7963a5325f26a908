"""Safe checkpoint loading: the weights, what a checkpoint says about itself, and what wrappers added.

Checkpoints are never unpickled with code execution: `.pt/.pth/.bin/.ckpt` go through
``torch.load(weights_only=True)`` and `.safetensors` through safetensors. nc-audit's own checkpoints
are self-describing: besides the state dict they carry a plain-data architecture record
(``nc-audit-arch/1``), stored under ``architecture`` in a `.pt` file and as JSON in a `.safetensors`
file's metadata. A Hugging Face ``save_pretrained`` folder (or its weights file with config.json
beside it) is read through :mod:`nc_audit.io.checkpoints.hf_folder`.

Keys are normalised, and every change is kept in ``Checkpoint.notes`` for the report: DataParallel/DDP's
leading ``module.`` and torch.compile's ``_orig_mod.`` are removed, and a Lightning ``.ckpt`` (its
weights under ``state_dict``) loses the LightningModule attribute every key starts with (``model.``).
The classifier head is found by :mod:`nc_audit.io.checkpoints.heads`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
from pathlib import Path

import torch

from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints.container import SAFETENSORS_SUFFIX, TORCH_SUFFIXES, check_checkpoint_file
from nc_audit.io.checkpoints.heads import Head, find_head
from nc_audit.io.checkpoints.hf_folder import (
    folder_sha256,
    hf_folder,
    read_config,
    read_hf_tensors,
)
from nc_audit.io.checkpoints.record import Checkpoint, step_of

__all__ = ["Checkpoint", "Head", "file_sha256", "find_head", "load_checkpoint", "source_sha256"]

NESTED_KEYS = ("state_dict", "model", "model_state_dict")
SAFETENSORS_ARCH_KEY = "nc_audit_architecture"
SAFETENSORS_META_KEY = "nc_audit_meta"
#: Plain-data entries of a .pt checkpoint kept as its metadata (a fine-tuning run's settings and source
#: say which data an adapter was trained on).
META_KEYS = ("step", "epoch", "global_step", "format", "metrics", "dataset", "settings", "source", "finetune")
#: Keys a Lightning checkpoint holds beside its state_dict (pytorch_lightning, then lightning).
LIGHTNING_VERSION_KEYS = ("pytorch-lightning_version", "lightning_version")


def read_step(path: Path | str) -> int | None:
    """A checkpoint's recorded step without reading its weights (to order a trajectory cheaply):
    safetensors metadata only; a .pt file memory-mapped (zip format), else loaded."""
    path = Path(path)
    check_checkpoint_file(path)  # a FIFO or a zip bomb never reaches torch.load
    if path.suffix.lower() == SAFETENSORS_SUFFIX:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                return step_of(_json_or_none((handle.metadata() or {}).get(SAFETENSORS_META_KEY)) or {})
        except Exception:  # unreadable: load_checkpoint raises the clear error
            return load_checkpoint(path).step
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # legacy (non-zip) format or bad file: load_checkpoint decides, with a clear error
        return load_checkpoint(path).step
    return step_of(obj) if isinstance(obj, dict) else None


def file_sha256(path: Path, block: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in blocks; remembered for the process while the file's identity
    and timestamps (device, inode, size, mtime, ctime) stay the same, so that ``measure --data`` (cache key,
    then the checkpoint's provenance) reads a large checkpoint once, not twice."""
    info = os.stat(path)
    identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    return _sha256(os.path.realpath(path), identity, block)


@functools.lru_cache(maxsize=256)
def _sha256(path: str, identity: tuple[int, ...], block: int) -> str:
    """The uncached digest; ``identity`` only keys the cache."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def source_sha256(path: Path | str) -> str:
    """SHA-256 of a checkpoint: its file's bytes, or for a Hugging Face folder one digest of config.json
    and every weight file."""
    path = Path(path)
    folder = hf_folder(path)
    return folder_sha256(folder, file_sha256) if folder is not None else file_sha256(path)


def load_checkpoint(path: Path | str) -> Checkpoint:
    """Load a checkpoint safely (no code execution); errors are InputError with one clear line."""
    path = Path(path)
    folder = hf_folder(path)
    if folder is not None:
        state_dict, notes = _normalise(read_hf_tensors(folder), lightning=False)[::2]
        return Checkpoint(
            path, source_sha256(path), state_dict, None, {}, False, tuple(notes), "", read_config(folder)
        )
    if path.is_dir():
        raise InputError(
            f"{path}: a folder, but not a Hugging Face save_pretrained folder (config.json with model_type, "
            "and model.safetensors or pytorch_model.bin)"
        )
    check_checkpoint_file(path)  # a regular file; a .pt container checked before torch.load
    suffix = path.suffix.lower()
    lightning = False
    if suffix == SAFETENSORS_SUFFIX:
        state_dict, architecture, meta = _load_safetensors(path)
        ordered = False
    elif suffix in TORCH_SUFFIXES:
        state_dict, architecture, meta, lightning = _load_torch(path)
        ordered = True
    else:
        known = ", ".join((*TORCH_SUFFIXES, SAFETENSORS_SUFFIX))
        raise InputError(f"{path}: unknown checkpoint type '{suffix}' (expected one of {known})")
    if not state_dict:
        raise InputError(f"{path}: the checkpoint holds no tensors")
    state_dict, stripped, notes = _normalise(state_dict, lightning)
    return Checkpoint(
        path, file_sha256(path), state_dict, architecture, meta, ordered, tuple(notes), stripped
    )


def _normalise(
    state: dict[str, torch.Tensor], lightning: bool
) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """The state dict without the wrappers' prefixes; (state, leading prefix removed, notes)."""
    state, stripped, notes = _strip_wrappers(state)
    if lightning and (prefix := _lightning_prefix(state)):
        state = {key[len(prefix) :]: value for key, value in state.items()}
        stripped += prefix
        notes.append(
            f"Lightning checkpoint: stripped the LightningModule attribute prefix '{prefix}' from every key "
            "of its state_dict"
        )
    return state, stripped, notes


def _load_torch(path: Path) -> tuple[dict[str, torch.Tensor], dict | None, dict, bool]:
    """(state dict, architecture record, plain metadata, whether it is a Lightning checkpoint)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        if "Unsupported global" in text or "GLOBAL" in text:
            culprit = _unsupported_global(text)
            if path.suffix.lower() == ".ckpt":
                raise InputError(
                    f"{path}: this Lightning checkpoint holds {culprit} (e.g. in its hyper_parameters), which "
                    "torch.load(weights_only=True) refuses because unpickling it could execute code; if you "
                    "trust the file, save its weights once: torch.save(torch.load(PATH, weights_only=False)"
                    "['state_dict'], 'weights.pt'), or save plain hyperparameters"
                ) from None
            raise InputError(
                f"{path}: refused to unpickle {culprit}, which could execute code; save the weights instead: "
                "torch.save(model.state_dict(), PATH) or safetensors.torch.save_file(model.state_dict(), PATH)"
            ) from None
        raise InputError(f"{path}: not a readable PyTorch checkpoint ({_first_line(text)})") from None
    except Exception as error:  # torch.load on arbitrary bytes can raise almost anything
        detail = _first_line(str(error)) if str(error) else type(error).__name__
        raise InputError(f"{path}: not a readable PyTorch checkpoint ({detail})") from None
    if isinstance(obj, torch.nn.Module):  # only reachable if a caller widened the safe globals
        raise InputError(f"{path}: holds a whole model, save model.state_dict() instead")
    if not isinstance(obj, dict):
        raise InputError(f"{path}: expected a state dict, found a {type(obj).__name__}")
    architecture = obj.get("architecture") if isinstance(obj.get("architecture"), dict) else None
    meta = {k: v for k, v in obj.items() if k in META_KEYS}
    lightning = any(key in obj for key in LIGHTNING_VERSION_KEYS)
    for key in NESTED_KEYS:
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    state_dict = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state_dict:
        raise InputError(
            f"{path}: no tensors at the top level or under {', '.join(NESTED_KEYS)} (keys: {_preview(obj)})"
        )
    return state_dict, architecture, meta, lightning


def _load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict | None, dict]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            state_dict = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable safetensors file ({_first_line(str(error))})") from None
    architecture = _json_or_none(metadata.get(SAFETENSORS_ARCH_KEY))
    meta = _json_or_none(metadata.get(SAFETENSORS_META_KEY)) or {}
    return state_dict, architecture, meta


def _strip_wrappers(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """Undo what wrappers add to every key: DataParallel/DDP's leading ``module.`` and torch.compile's
    ``_orig_mod.`` (anywhere: a compiled submodule adds it mid-key). Returns (state, the leading prefix
    removed from every key, notes saying what was removed)."""
    notes: list[str] = []
    if any("_orig_mod." in key for key in state):
        state = {key.replace("_orig_mod.", ""): value for key, value in state.items()}
        notes.append("removed torch.compile's '_orig_mod.' from the keys")
    stripped = ""
    while state and all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
        stripped += "module."
    if stripped:
        notes.append(f"stripped the DataParallel/DDP prefix '{stripped}' from every key")
    return state, stripped, notes


def _lightning_prefix(state: dict[str, torch.Tensor]) -> str:
    """The LightningModule attribute every key of a Lightning state dict starts with (``model.``), or ''."""
    heads = {key.split(".", 1)[0] for key in state}
    if len(heads) == 1 and all("." in key for key in state):
        return heads.pop() + "."
    return ""


def _unsupported_global(text: str) -> str:
    for line in text.splitlines():
        if "Unsupported global" in line:
            return "a Python object (" + line.split("GLOBAL", 1)[-1].split("was not")[0].strip() + ")"
    return "a Python object"


def _json_or_none(text: str | None) -> dict | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["unknown error"])[0][:200]


def _preview(obj: dict) -> str:
    keys = list(obj)[:6]
    return ", ".join(map(str, keys)) + (" ..." if len(obj) > 6 else "")
