"""Which files a trajectory reads: folders expanded into their checkpoints (or dumps), in natural order,
and the dump beside each checkpoint. No torch: ``track`` checks these files before loading it."""

from __future__ import annotations

import os
import re
from pathlib import Path

from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints.container import SAFETENSORS_SUFFIX, TORCH_SUFFIXES, check_checkpoint_file
from nc_audit.io.checkpoints.run_files import is_side_file
from nc_audit.io.dumps.reader import DUMP_SUFFIXES, check_head, resolve_split
from nc_audit.measurement.run_folders import is_model_folder, lightning_checkpoints, trainer_checkpoints

CHECKPOINT_SUFFIXES = (*TORCH_SUFFIXES, SAFETENSORS_SUFFIX)


def natural_key(path: Path) -> list[object]:
    """Sort key that orders 'epoch_2' before 'epoch_10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def expand_folder(folder: Path) -> list[Path]:
    """A folder's checkpoints (measurement/run_folders.py): itself when it is a save_pretrained folder;
    a Trainer run's ``checkpoint-N`` folders (and the final model saved beside them); a Lightning run's
    ``checkpoints/``; else its checkpoint files (a trainer's optimizer, scheduler, RNG and argument files
    left out, never opened), else its dumps."""
    runs = trainer_checkpoints(folder)
    if runs:  # the final model saved in the run folder itself comes after its checkpoints
        return [*runs, folder] if is_model_folder(folder) else runs
    if is_model_folder(folder):
        return [folder]
    lightning = lightning_checkpoints(folder)
    if lightning:
        return sorted(lightning, key=natural_key)
    files = sorted(folder.iterdir(), key=natural_key)
    checkpoints = [p for p in files if p.suffix.lower() in CHECKPOINT_SUFFIXES and not is_side_file(p)]
    dumps = [p for p in files if p.suffix.lower() in DUMP_SUFFIXES]
    chosen = checkpoints or dumps
    if not chosen:
        raise InputError(
            f"{folder}: the folder holds no checkpoints (.pt/.pth/.bin/.ckpt/.safetensors, a save_pretrained "
            "folder, a Trainer run's checkpoint-N folders, a Lightning run's checkpoints/) or dumps (.h5)"
        )
    return chosen


def discover(inputs: list[Path]) -> list[Path]:
    """Expand folders into their checkpoints (:func:`expand_folder`); keep files as given (a FIFO or
    device among them is refused when it is checked, not taken for a missing file)."""
    found: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found.extend(expand_folder(item))
        elif os.path.lexists(item) and item.exists():
            found.append(item)
        else:
            raise InputError(f"{item}: no such checkpoint file or folder")
    if not found:
        raise InputError("no checkpoints given")
    return found


def features_beside(checkpoint: Path) -> Path | None:
    """A dump with the checkpoint's stem in the same folder, if there is one."""
    for suffix in DUMP_SUFFIXES:
        candidate = checkpoint.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def check_trajectory_inputs(paths: list[Path], split: str | None, with_data: bool) -> list[Path]:
    """The files a trajectory reads, checked like ``measure``'s before torch is loaded: every checkpoint's
    container, every dump's split and head; returns them (checkpoints, then the dumps beside them)."""
    dumps = []
    for path in paths:
        if path.suffix.lower() in DUMP_SUFFIXES:
            dumps.append(path)
            continue
        check_checkpoint_file(path)
        beside = None if with_data else features_beside(path)
        if beside is not None:
            dumps.append(beside)
    for dump in dumps:
        resolve_split(dump, split)
        if dump in paths:  # a dump measured alone holds its head
            check_head(dump)
    return [*paths, *(dump for dump in dumps if dump not in paths)]
