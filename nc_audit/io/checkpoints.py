"""Safe checkpoint loading and classifier-head detection.

Checkpoints are never unpickled with code execution: `.pt/.pth/.bin` go through
``torch.load(weights_only=True)`` and `.safetensors` through safetensors. nc-audit's own checkpoints
are self-describing: besides the state dict they carry a plain-data architecture record
(``nc-audit-arch/1``), stored under ``architecture`` in a `.pt` file and as JSON in a `.safetensors`
file's metadata.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nc_audit.core.errors import InputError

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"
NESTED_KEYS = ("state_dict", "model", "model_state_dict")
SAFETENSORS_ARCH_KEY = "nc_audit_architecture"
SAFETENSORS_META_KEY = "nc_audit_meta"


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: its weights and what it says about itself."""

    path: Path
    sha256: str
    state_dict: dict[str, torch.Tensor]
    architecture: dict[str, Any] | None = None  # nc-audit-arch/1 record, when the file has one
    meta: dict[str, Any] = field(default_factory=dict)  # step, epoch, ... (plain data)
    ordered: bool = True  # whether key order follows module order (False for safetensors: sorted keys)

    @property
    def step(self) -> int | None:
        """The training step (or epoch) the checkpoint records, if any."""
        return step_of(self.meta)


def step_of(meta: dict[str, Any]) -> int | None:
    """The training step (or, failing that, the epoch) recorded in a checkpoint's plain-data fields."""
    for key in ("step", "global_step", "epoch"):
        value = meta.get(key)
        if isinstance(value, int):
            return value
    return None


def read_step(path: Path | str) -> int | None:
    """A checkpoint's recorded step without reading its weights (to order a trajectory cheaply):
    safetensors metadata only; a .pt file memory-mapped (zip format), else loaded."""
    path = Path(path)
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


@dataclass(frozen=True)
class Head:
    """The classifier head: W (C, d) and optional b (C,), with the state-dict name it came from."""

    name: str
    weight: torch.Tensor
    bias: torch.Tensor | None

    @property
    def num_classes(self) -> int:
        return int(self.weight.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.weight.shape[1])


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


def load_checkpoint(path: Path | str) -> Checkpoint:
    """Load a checkpoint safely (no code execution); errors are InputError with one clear line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint file")
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        state_dict, architecture, meta = _load_safetensors(path)
        ordered = False
    elif suffix in TORCH_SUFFIXES:
        state_dict, architecture, meta = _load_torch(path)
        ordered = True
    else:
        known = ", ".join((*TORCH_SUFFIXES, SAFETENSORS_SUFFIX))
        raise InputError(f"{path}: unknown checkpoint type '{suffix}' (expected one of {known})")
    if not state_dict:
        raise InputError(f"{path}: the checkpoint holds no tensors")
    return Checkpoint(path, file_sha256(path), state_dict, architecture, meta, ordered)


def _load_torch(path: Path) -> tuple[dict[str, torch.Tensor], dict | None, dict]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        if "Unsupported global" in text or "weights_only" in text.lower() or "GLOBAL" in text:
            culprit = _unsupported_global(text)
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
    meta = {
        k: v for k, v in obj.items() if k in ("step", "epoch", "global_step", "format", "metrics", "dataset")
    }
    for key in NESTED_KEYS:
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    state_dict = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state_dict:
        raise InputError(
            f"{path}: no tensors at the top level or under {', '.join(NESTED_KEYS)} (keys: {_preview(obj)})"
        )
    return _strip_prefix(state_dict, "module."), architecture, meta


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
    return _strip_prefix(state_dict, "module."), architecture, meta


def find_head(
    checkpoint: Checkpoint, feature_dim: int | None = None, min_classes: int = 2, head_name: str | None = None
) -> Head:
    """The classifier head: ``head_name`` if given, else the architecture record's head, else the last
    2-D weight of shape (C, d) that fits the features (d = feature_dim, C ≥ min_classes).

    A safetensors file stores keys sorted by name, so "last" means nothing there: more than one fitting
    weight is then ambiguous. Errors list the candidates and how to choose.
    """
    state = checkpoint.state_dict
    name = head_name or (checkpoint.architecture or {}).get("head")
    if name:
        name = name.removesuffix(".weight")
        weight = state.get(f"{name}.weight")
        if weight is None or weight.ndim != 2:
            raise InputError(
                f"{checkpoint.path}: no 2-D tensor '{name}.weight'; 2-D weights: {_describe(_matrices(state))}"
            )
        return Head(name, weight.to(torch.float64), _bias(state, name))
    matrices = _matrices(state)
    fits = [
        (key, w)
        for key, w in matrices
        if (feature_dim is None or w.shape[1] == feature_dim) and w.shape[0] >= min_classes
    ]
    if not fits:
        wanted = f"(C, {feature_dim})" if feature_dim is not None else "(C, d)"
        raise InputError(
            f"{checkpoint.path}: no classifier head of shape {wanted} found; 2-D weights: {_describe(matrices)}; "
            "choose one with --head NAME"
        )
    if len(fits) > 1 and not checkpoint.ordered:
        raise InputError(
            f"{checkpoint.path}: ambiguous classifier head, candidates {_describe(fits)}; choose one with --head NAME"
        )
    key, weight = fits[-1]
    name = key.removesuffix("weight").removesuffix(".")
    return Head(name, weight.to(torch.float64), _bias(state, name))


def _matrices(state: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    return [
        (key, value)
        for key, value in state.items()
        if key.endswith("weight") and value.ndim == 2 and value.is_floating_point()
    ]


def _bias(state: dict[str, torch.Tensor], name: str) -> torch.Tensor | None:
    bias = state.get(f"{name}.bias" if name else "bias")
    return bias.to(torch.float64) if bias is not None and bias.ndim == 1 else None


def _describe(items: list[tuple[str, torch.Tensor]]) -> str:
    if not items:
        return "none"
    shown = ", ".join(f"{key} {tuple(value.shape)}" for key, value in items[:8])
    return shown + (f" and {len(items) - 8} more" if len(items) > 8 else "")


def _strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if state and all(key.startswith(prefix) for key in state):
        return {key[len(prefix) :]: value for key, value in state.items()}
    return state


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
