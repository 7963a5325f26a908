"""Which files and tensors a measurement reads: the dump's splits and the classifier head.

``measure``'s arguments come in (a checkpoint with a dump, or a dump holding its head, split names, a
head name) and are checked before any streaming starts, so bad input fails fast with one line.

Splits: the decisions (NC4, accuracy) come from ``split``; the class means — and so every metric but
NC4 — from ``means_split`` when given, else from ``train`` when the dump has it (Papyan's protocol),
else from the measured split itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints.heads import applied_head
from nc_audit.io.checkpoints.load import Checkpoint, Head, file_sha256, find_head, load_checkpoint
from nc_audit.io.data.datasets import holds_features
from nc_audit.io.dumps.reader import DUMP_SUFFIXES, SplitInfo, open_dump, read_attrs, read_head, resolve_split
from nc_audit.io.hdf5.guard import dataset_at

ADAPTED_DUMP_NAME = "final_features.h5"


@dataclass(frozen=True)
class MeasureInputs:
    """What one measurement reads: the head (and where it came from) and the dump's splits."""

    head: Head
    head_origin: dict[str, str | int | None]
    means_split: SplitInfo
    decisions_split: SplitInfo
    notes: tuple[str, ...] = field(default=())  # what loading did (prefixes stripped, C inferred, ...)


def label_classes(info: SplitInfo) -> int:
    """1 + the largest label of a split (the number of classes its labels need)."""
    step = 1 << 20
    with open_dump(info.path) as handle:
        labels = dataset_at(handle, f"{info.group()}/labels", info.path)  # checked, never a link out
        if labels is None:
            raise InputError(f"{info.path}: {info.group()}/labels is missing")
        tops = [int(np.max(labels[i : i + step])) for i in range(0, labels.shape[0], step)]
    return max(tops, default=-1) + 1


def resolve_inputs(
    source: Path | str,
    features: Path | str | None = None,
    split: str | None = None,
    head: str | None = None,
    means_split: str | None = None,
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
    if means_split is not None:
        means = resolve_split(dump_path, means_split)
    elif decisions.split not in (None, "train") and _has_split(dump_path, "train"):
        means = resolve_split(dump_path, "train")
    else:
        means = decisions
    attrs = read_attrs(dump_path)
    notes = list(_json_list(attrs.get("notes")))
    found: Head | None
    origin: dict[str, str | int | None]
    if checkpoint_path is not None:
        checkpoint = load_checkpoint(checkpoint_path)
        found = _checkpoint_head(checkpoint, dump_path, attrs, decisions, head)
        origin = {"path": str(checkpoint_path), "sha256": checkpoint.sha256, "head": found.name}
        if checkpoint.step is not None:
            origin["step"] = checkpoint.step
        notes = [*checkpoint.notes, *(note for note in notes if note not in checkpoint.notes)]
    else:
        found = read_head(dump_path)
        if found is None:
            raise InputError(
                f"{dump_path}: the dump holds no /head/weight; pass the checkpoint: measure CKPT --features {dump_path}"
            )
        origin = {
            "path": attrs.get("checkpoint_path"),
            "sha256": attrs.get("checkpoint_sha256"),
            "head": found.name,
        }
    if decisions.feature_dim == 0 or means.feature_dim == 0:  # no direction to measure (every metric NC-like)
        raise InputError(f"{dump_path}: the features have width d = 0; Neural Collapse needs d >= 1")
    check_finite_head(found, checkpoint_path or dump_path)
    if found.feature_dim != decisions.feature_dim:
        raise InputError(
            f"{dump_path}: features have dimension {decisions.feature_dim} but the head '{found.name}' expects "
            f"{found.feature_dim}; is --head the right layer?"
        )
    return MeasureInputs(found, origin, means, decisions, tuple(notes))


def _checkpoint_head(
    checkpoint: Checkpoint, dump: Path, attrs: dict[str, str], decisions: SplitInfo, head: str | None
) -> Head:
    """The checkpoint's head; for a dump extracted from this checkpoint's model (which stores the head
    it used) that stored head, since a Hugging Face folder's stored names may differ from the model's."""
    if attrs.get("checkpoint_sha256") == checkpoint.sha256 and checkpoint.hf_folder is not None:
        stored = read_head(dump)
        if stored is not None and (head is None or stored.name == head):
            return stored
    if (applied := applied_head(checkpoint, read_head(dump), attrs)) is not None:
        return applied  # a parameter head as the model applied it (cosine: rows normalised)
    classes = checkpoint.num_classes or label_classes(decisions)
    return find_head(checkpoint, feature_dim=decisions.feature_dim, head_name=head, num_classes=classes)


def adapter_features(checkpoint: Checkpoint, features: Path) -> bool:
    """For a ``finetune --features`` adapter checkpoint and a dump: False when the dump holds this
    checkpoint's own (adapted) features, True when it holds the backbone features the adapter was
    trained on (measure them through the adapter); any other dump is refused, never measured as if
    the adapter were not there. Other checkpoints: False."""
    if (checkpoint.architecture or {}).get("name") != "adapter":
        return False
    attrs = read_attrs(features)
    if attrs.get("checkpoint_sha256") == checkpoint.sha256:
        return False
    meta = checkpoint.meta
    trained_on = meta.get("dataset") or (meta.get("settings") or {}).get("data")
    source = (meta.get("finetune") or {}).get("source") or meta.get("source") or {}
    own = f"{features.resolve()}:sha256={file_sha256(features)}"
    from_backbone = source.get("sha256") is not None and attrs.get("checkpoint_sha256") == source["sha256"]
    if trained_on == own or from_backbone:
        return True
    raise InputError(
        f"{checkpoint.path} is a feature adapter (finetune --features) and {features} holds neither its "
        f"adapted features nor the backbone features it was trained on; measure the run's "
        f"{ADAPTED_DUMP_NAME} (written beside {checkpoint.path.name}), or pass the backbone's dump as --data "
        "to run it through the adapter"
    )


def check_adapter_data(checkpoint: Checkpoint, data: str) -> None:
    """A feature adapter's ``--data`` must be a feature dump (its inputs are a backbone's features)."""
    if (checkpoint.architecture or {}).get("name") == "adapter" and not holds_features(data):
        raise InputError(
            f"{checkpoint.path} is a feature adapter (finetune --features): it takes the backbone's features, "
            f"not the inputs of {data}; pass --data with the backbone's feature dump, or measure the run's "
            f"{ADAPTED_DUMP_NAME}"
        )


def _json_list(text: str | None) -> list[str]:
    try:
        value = json.loads(text) if text else []
    except json.JSONDecodeError:
        return []
    return [str(item) for item in value] if isinstance(value, list) else []


def check_finite_head(head: Head, where: Path) -> None:
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
