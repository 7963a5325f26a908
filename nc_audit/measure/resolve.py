"""Which files and tensors a measurement reads: the device, the dump's splits and the classifier head.

``measure``'s arguments come in (a checkpoint with a dump, or a dump holding its head, a split name,
a head name) and are checked before any streaming starts, so bad input fails fast with one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints import Head, find_head, load_checkpoint
from nc_audit.io.dumps import SplitInfo, read_attrs, read_head, resolve_split

DUMP_SUFFIXES = (".h5", ".hdf5", ".hdf")


@dataclass(frozen=True)
class MeasureInputs:
    """What one measurement reads: the head (and where it came from) and the dump's splits."""

    head: Head
    head_origin: dict
    means_split: SplitInfo
    decisions_split: SplitInfo


def resolve_inputs(
    source: Path | str,
    features: Path | str | None = None,
    split: str | None = None,
    head: str | None = None,
) -> MeasureInputs:
    """Pick the dump, its splits and the head from ``measure``'s arguments (see the CLI's help)."""
    source = Path(source)
    if features is None and source.suffix.lower() in DUMP_SUFFIXES:
        dump_path, checkpoint_path = source, None
    elif features is None:
        raise InputError(f"{source}: a checkpoint needs features: pass --features DUMP.h5 or --data NAME")
    else:
        dump_path, checkpoint_path = Path(features), source
    decisions = resolve_split(dump_path, split)
    means = decisions
    if decisions.split not in (None, "train"):
        means = resolve_split(dump_path, "train") if _has_split(dump_path, "train") else decisions
    if checkpoint_path is not None:
        checkpoint = load_checkpoint(checkpoint_path)
        found = find_head(checkpoint, feature_dim=decisions.feature_dim, head_name=head)
        origin = {"path": str(checkpoint_path), "sha256": checkpoint.sha256, "head": found.name}
        if checkpoint.step is not None:
            origin["step"] = checkpoint.step
    else:
        found = read_head(dump_path)
        if found is None:
            raise InputError(
                f"{dump_path}: the dump holds no /head/weight; pass the checkpoint: measure CKPT --features {dump_path}"
            )
        attrs = read_attrs(dump_path)
        origin = {
            "path": attrs.get("checkpoint_path"),
            "sha256": attrs.get("checkpoint_sha256"),
            "head": found.name,
        }
    _check_finite_head(found, checkpoint_path or dump_path)
    if found.feature_dim != decisions.feature_dim:
        raise InputError(
            f"{dump_path}: features have dimension {decisions.feature_dim} but the head '{found.name}' expects "
            f"{found.feature_dim}; is --head the right layer?"
        )
    return MeasureInputs(found, origin, means, decisions)


def _check_finite_head(head: Head, where: Path) -> None:
    """A diverged checkpoint (NaN/Inf in the head) is bad input, not a solver failure."""
    for part, tensor in (("weight", head.weight), ("bias", head.bias)):
        if tensor is not None and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise InputError(
                f"{where}: the head '{head.name}.{part}' holds {bad} NaN or Inf values; did training diverge?"
            )


def _has_split(path: Path, split: str) -> bool:
    try:
        resolve_split(path, split)
    except InputError:
        return False
    return True
