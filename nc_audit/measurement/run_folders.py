"""Training run folders as they come, for ``track``: what in a folder is a checkpoint, its step, its label.

- A Hugging Face ``save_pretrained`` folder (config.json + weights) is one checkpoint, never its files.
- A Hugging Face Trainer output folder: its ``checkpoint-N/`` subfolders (and the folder itself when the
  final model was saved there). The step is ``global_step`` of the folder's ``trainer_state.json``, read
  as bounded untrusted JSON; ``optimizer.pt``, ``scheduler.pt``, ``rng_state*.pth``, ``scaler.pt`` and
  ``training_args.bin`` are never opened (the last two are pickles).
- A Lightning run: its ``checkpoints/`` folder (also under ``lightning_logs/version_*/``), ``.ckpt`` files.
- nc-audit's own run folders (``finetune --out``: ``epoch_000.pt`` ... ``final.pt``) and any folder of
  checkpoint files; failing those, of dumps.

Rows are labelled by the most specific distinct name: the file or folder name when that tells them apart
(``checkpoint-13``), else with as many parent folders as it takes (``run_a/final.pt``). A checkpoint
with the same bytes as another, or the same weights at the same step (``epoch_005.pt`` and ``final.pt``
of one run), is measured once; the note says so.
No torch here: ``track`` checks the files before loading it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints.run_files import TRAINER_STATE
from nc_audit.io.guards.files import load_json

#: Largest trainer_state.json read (its log_history grows with the run; real ones are kilobytes to MBs).
MAX_TRAINER_STATE_BYTES = 32 * 2**20
#: A save_pretrained folder's weights (as nc_audit.io.checkpoints.hf_folder.WEIGHT_NAMES, without torch).
MODEL_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
#: A Hugging Face Trainer checkpoint folder.
TRAINER_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
LIGHTNING_SUFFIX = ".ckpt"


def is_model_folder(folder: Path) -> bool:
    """Whether ``folder`` is a save_pretrained folder: config.json and a weights file."""
    return (
        folder.is_dir()
        and (folder / "config.json").is_file()
        and any((folder / name).is_file() for name in MODEL_WEIGHTS)
    )


def trainer_checkpoints(folder: Path) -> list[Path]:
    """The ``checkpoint-N`` model folders of a Trainer output folder, by N; the folder itself first
    when the final model was saved there too (ordered by its step later)."""
    found = [
        (int(match.group(1)), child)
        for child in folder.iterdir()
        if (match := TRAINER_CHECKPOINT.match(child.name)) and is_model_folder(child)
    ]
    found.sort(key=lambda item: item[0])
    return [child for _, child in found]


def lightning_checkpoints(folder: Path) -> list[Path]:
    """The ``.ckpt`` files of a Lightning run folder's ``checkpoints/`` (or ``lightning_logs/*/checkpoints/``)."""
    places = [folder / "checkpoints"]
    logs = folder / "lightning_logs"
    if logs.is_dir():
        places += sorted(version / "checkpoints" for version in logs.iterdir() if version.is_dir())
    return [
        path
        for place in places
        if place.is_dir()
        for path in sorted(place.iterdir())
        if path.suffix.lower() == LIGHTNING_SUFFIX and path.is_file()
    ]


def trainer_step(path: Path) -> int | None:
    """``global_step`` from the trainer_state.json of a checkpoint folder (or of a weights file's folder);
    None without one (or without ``global_step``). The file is bounded JSON (size, depth, digits); a
    malformed one, or a ``global_step`` that is not a whole number >= 0, is an InputError."""
    folder = path if path.is_dir() else path.parent
    if not path.is_dir() and path.name not in MODEL_WEIGHTS:
        return None
    state_path = folder / TRAINER_STATE
    if not state_path.is_file():
        return None
    state = load_json(state_path, "trainer state", MAX_TRAINER_STATE_BYTES)
    if not isinstance(state, dict) or "global_step" not in state:
        return None  # no step recorded: the folder's name states it (checkpoint-N)
    step = state["global_step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise InputError(
            f"{state_path}: global_step is {str(step)[:40]!r}, not a step count (a whole number >= 0)"
        )
    return step


def distinct_labels(paths: list[Path]) -> dict[Path, str]:
    """Each path's shortest trailing name (``file``, ``folder/file``, ...) that no other path shares."""
    depth = 1
    longest = max((len(path.parts) for path in paths), default=1)
    while depth < longest:
        labels = ["/".join(path.parts[-depth:]) for path in paths]
        if len(set(labels)) == len(labels):
            break
        depth += 1
    return {path: "/".join(path.parts[-depth:]) for path in paths}


def _weights_sha256(path: Path) -> str:
    """SHA-256 of a checkpoint's tensors (names, dtypes, shapes, bytes; in name order): two files that
    store the same weights with other metadata (``epoch_001.pt`` with its optimizer, ``final.pt``) agree."""
    import torch

    from nc_audit.io.checkpoints.load import load_checkpoint

    digest = hashlib.sha256()
    for name, tensor in sorted(load_checkpoint(path).state_dict.items()):
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def drop_duplicates(
    ordered: list[tuple[Path, int | None]],
    labels: dict[Path, str],
    features_of: Callable[[Path], Path | None] | None = None,
) -> tuple[list[tuple[Path, int | None]], dict[Path, str]]:
    """``ordered`` without the later copies of one checkpoint, and a note per kept path that had copies.
    A copy has the same bytes (SHA-256 of the file, or of a save_pretrained folder), or the same tensors
    as a checkpoint at the same step, or as any other when it records no step while others do (a
    Trainer run's final model; ``final.pt``): ``final.pt holds the same weights as epoch_005.pt (sha256
    1a2b3c4d5e6f…): shown once``. A run where no checkpoint records a step is compared by bytes only.
    ``features_of`` gives the dump each checkpoint is measured on (one beside it, without --data): two
    checkpoints measured on different dumps are two rows, whatever their weights."""
    from nc_audit.io.checkpoints.load import source_sha256
    from nc_audit.io.dumps.reader import DUMP_SUFFIXES

    kept: dict[str, Path] = {}
    copies: dict[Path, list[Path]] = {}
    by_step: dict[int | None, list[Path]] = {}
    digests: dict[Path, str] = {}
    weights: dict[Path, str] = {}
    some_step = any(step is not None for _, step in ordered)

    def same_weights(a: Path, b: Path) -> bool:
        for path in (a, b):
            if path not in weights:
                weights[path] = _weights_sha256(path)
        return weights[a] == weights[b]

    for path, step in ordered:
        features = features_of(path) if features_of is not None else None
        if features is not None:
            kept[source_sha256(features) + source_sha256(path)] = path  # measured on its own dump
            continue
        sha = source_sha256(path)
        if sha not in kept and path.suffix.lower() not in DUMP_SUFFIXES and some_step:
            # the same step, or a checkpoint that records none (final.pt) beside ones that do
            if step is None:
                candidates = [p for paths in by_step.values() for p in paths]
            else:
                candidates = [*by_step.get(step, []), *by_step.get(None, [])]
            for earlier in candidates:
                if same_weights(earlier, path):
                    sha = digests[earlier]
                    break
        if sha in kept:
            copies.setdefault(kept[sha], []).append(path)
            continue
        kept[sha], digests[path] = path, sha
        if path.suffix.lower() not in DUMP_SUFFIXES:
            by_step.setdefault(step, []).append(path)
    notes = {}
    for first, others in copies.items():
        names = ", ".join(labels.get(other, other.name) for other in others)
        verb = "holds" if len(others) == 1 else "hold"
        notes[first] = (
            f"{names} {verb} the same weights as {labels.get(first, first.name)} "
            f"(sha256 {digests[first][:12]}…): shown once"
        )
    dropped = {path for others in copies.values() for path in others}
    return [(path, step) for path, step in ordered if path not in dropped], notes
