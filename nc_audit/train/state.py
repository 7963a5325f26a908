"""Training checkpoints, RNG state and history.jsonl: what makes ``--resume`` bit-identical.

A training checkpoint ``DIR/epoch_XXX.pt`` is a self-describing nc-audit checkpoint (state dict plus
architecture record) that also holds, as plain data readable with ``torch.load(weights_only=True)``:
the optimizer state, every RNG state (torch CPU, CUDA when initialised, NumPy, Python and the
data-order generator), the anchors, the run's settings and the whole history so far. Files are written
atomically (temporary name, then rename), so a checkpoint that exists is complete; ``--resume`` still
loads each candidate and checks its ``complete`` flag, newest first, skipping damaged files. history.jsonl is rewritten (atomically) from the
history each checkpoint holds, so the two never disagree, even after a kill between the two writes.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from nc_audit.core.errors import InputError, changed_settings
from nc_audit.core.formats import TRAIN_FORMAT
from nc_audit.io.checkpoints.save import save_checkpoint
from nc_audit.io.guards.atomic import atomic_write_text

#: numpy's legacy RNG state: (kind, keys (624,) uint32, position, has_gauss, cached_gaussian).
NumpyState = tuple[str, np.ndarray, int, int, float]

HISTORY_NAME = "history.jsonl"
FINAL_NAME = "final.pt"
_EPOCH_FILE = re.compile(r"epoch_(\d+)\.pt")
_STALE_TEMPS = (
    ".epoch_*.pt.*.tmp",
    f".{FINAL_NAME}.*.tmp",
    f".{HISTORY_NAME}.*.tmp",
    ".final_features.h5.*.tmp",
)


def epoch_path(out: Path, epoch: int) -> Path:
    """DIR/epoch_XXX.pt (three digits at least; natural order is numeric order)."""
    return out / f"epoch_{epoch:03d}.pt"


def capture_rng(data_order: torch.Generator) -> dict[str, Any]:
    """Every RNG state the run may draw from, as tensors, lists and numbers (weights_only-safe)."""
    kind, keys, pos, has_gauss, cached = cast(NumpyState, np.random.get_state())  # legacy=True: the tuple
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos)},
        "numpy_gauss": [int(has_gauss), float(cached)],
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "data_order": data_order.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], data_order: torch.Generator) -> None:
    """Put back what :func:`capture_rng` recorded (CUDA only when both runs had it)."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    has_gauss, cached = state["numpy_gauss"]
    keys = numpy_state["keys"].numpy().astype(np.uint32)
    np.random.set_state((numpy_state["kind"], keys, numpy_state["pos"], has_gauss, cached))
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["internal"]), python_state["gauss_next"]))
    data_order.set_state(state["data_order"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass(frozen=True)
class RunIdentity:
    """What a checkpoint records about its run, and a resumed run must repeat."""

    settings: dict[str, Any]
    fingerprint: dict[str, Any]
    source: dict[str, Any]
    architecture: dict[str, Any] | None


def save_training_checkpoint(
    path: Path,
    weights: dict[str, torch.Tensor],
    identity: RunIdentity,
    training: dict[str, Any],
) -> None:
    """Write one epoch's checkpoint atomically; ``training`` holds epoch, step, optimizer, rng, anchors,
    history, subset. A failed write (disk full) raises InputError and leaves any older file as it was."""
    history = training["history"]
    meta = {"epoch": training["epoch"], "step": training["step"], "metrics": history[-1]}
    extra = {
        "train_format": TRAIN_FORMAT,
        **training,
        "settings": identity.settings,
        "fingerprint": identity.fingerprint,
        "source": identity.source,
        "complete": True,
    }
    save_checkpoint(path, weights, identity.architecture, meta, extra)


def latest_checkpoint(out: Path) -> tuple[Path, dict[str, Any], list[str]]:
    """The newest complete training checkpoint in ``out``: (path, payload, notes on skipped files)."""
    found = sorted(
        ((int(m.group(1)), p) for p in out.glob("epoch_*.pt") if (m := _EPOCH_FILE.fullmatch(p.name))),
        reverse=True,
    )
    skipped: list[str] = []
    for _, path in found:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # a damaged file of any kind is skipped, and the reason kept
            skipped.append(f"{path.name}: unreadable ({str(error).strip().splitlines()[0][:120]})")
            continue
        if (
            isinstance(payload, dict)
            and payload.get("train_format") == TRAIN_FORMAT
            and payload.get("complete")
        ):
            return path, payload, skipped
        skipped.append(f"{path.name}: not a complete nc-audit fine-tuning checkpoint")
    detail = f" ({'; '.join(skipped)})" if skipped else ""
    raise InputError(
        f"--resume: {out} holds no complete epoch_XXX.pt checkpoint{detail}; start without --resume"
    )


def _describe(fingerprint: dict[str, Any]) -> str:
    if "factory" in fingerprint:
        return f"--model {fingerprint['factory']} with {len(fingerprint['parameters'])} tensors"
    return f"{fingerprint.get('name')} {json.dumps(fingerprint.get('config'), sort_keys=True)} ({fingerprint.get('num_classes')} classes)"


def check_resumable(path: Path, payload: dict[str, Any], identity: RunIdentity) -> None:
    """Raise InputError unless the run in ``payload`` is the one ``identity`` describes."""
    stored = payload.get("fingerprint")
    if stored != identity.fingerprint:
        raise InputError(
            f"--resume: {path} belongs to architecture {_describe(stored or {})}, but the CHECKPOINT given "
            f"is {_describe(identity.fingerprint)}; resume with the run's own checkpoint or use another --out"
        )
    if payload.get("source", {}).get("sha256") != identity.source.get("sha256"):
        raise InputError(
            f"--resume: {path} started from {payload.get('source', {}).get('path')} (another file than "
            f"{identity.source.get('path')}); resume with the same CHECKPOINT or use another --out"
        )
    changed = changed_settings(payload.get("settings", {}), identity.settings)
    if changed:
        raise InputError(
            f"--resume: settings differ from the run in {path.parent}: {'; '.join(changed)}; "
            "repeat the original options (only --epochs may change)"
        )


def prepare_out_dir(out: Path, resume: bool) -> None:
    """Create DIR; remove temporary files a killed run left; refuse to overwrite a run without --resume."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"--out {out}: cannot create the folder ({error.strerror or error})") from None
    for pattern in _STALE_TEMPS:
        for stale in out.glob(pattern):
            stale.unlink(missing_ok=True)
    existing = [p.name for p in (out / HISTORY_NAME, out / FINAL_NAME) if p.exists()]
    existing += sorted(p.name for p in out.glob("epoch_*.pt"))
    if existing and not resume:
        raise InputError(
            f"--out {out} already holds a fine-tuning run ({', '.join(existing[:3])}"
            f"{', …' if len(existing) > 3 else ''}); pass --resume to continue it or choose another --out"
        )


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_history(out: Path, history: list[dict[str, Any]]) -> None:
    """DIR/history.jsonl: one JSON object per epoch (0 = before training), rewritten atomically."""
    lines = [json.dumps({k: _finite_or_none(v) for k, v in record.items()}) + "\n" for record in history]
    atomic_write_text(out / HISTORY_NAME, "".join(lines))
