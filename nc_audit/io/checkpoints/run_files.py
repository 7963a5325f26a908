"""Files a trainer keeps beside a checkpoint that are not a model: a Hugging Face Trainer's
``optimizer.pt``, ``scheduler.pt``, ``scaler.pt``, ``rng_state*.pth`` and ``training_args.bin`` (the last
two are pickles of Python objects). ``track`` never opens them in a run folder, and a command given one
of them inside a Trainer checkpoint folder (``trainer_state.json`` beside it) refuses it by name, before
any byte is read."""

from __future__ import annotations

import re
from pathlib import Path

from nc_audit.core.errors import InputError

TRAINER_STATE = "trainer_state.json"
#: What a trainer keeps beside a checkpoint that is not the model.
SIDE_FILE = re.compile(
    r"^(optimizer|scheduler|scaler|rng_state(_\d+)?|training_args|trainer_state)\.(pt|pth|bin|json)$"
)


def is_side_file(path: Path) -> bool:
    """A trainer's optimizer/scheduler/RNG/arguments file, which is not a model."""
    return SIDE_FILE.match(path.name) is not None


def check_not_side_file(path: Path) -> None:
    """InputError when ``path`` is a trainer's side file in a Trainer checkpoint folder."""
    if is_side_file(path) and (path.parent / TRAINER_STATE).is_file():
        raise InputError(
            f"{path}: a trainer's {path.stem.split('_')[0]} state beside {TRAINER_STATE}, not a model; give "
            f"the checkpoint folder {path.parent} (or its model.safetensors), which nc-audit reads without it"
        )
