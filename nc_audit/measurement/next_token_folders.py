"""Which causal language model folders ``track --task next-token`` reads, found and ordered without torch
(so a wrong input fails before torch is loaded): each input a model folder (``config.json`` beside its
weights and tokenizer, as ``save_pretrained`` writes it), or a folder of them (a Trainer's ``output_dir``
with ``checkpoint-500/``, ``checkpoint-1000/``), ordered by the step their names state."""

from __future__ import annotations

from pathlib import Path

from nc_audit.core.errors import InputError
from nc_audit.measurement.discover import natural_key

#: The file that makes a folder a (Hugging Face) model folder.
CONFIG_NAME = "config.json"


def is_model_folder(path: Path) -> bool:
    """Whether ``path`` is a folder holding a model config (a regular file, not a link elsewhere)."""
    config = path / CONFIG_NAME
    return path.is_dir() and config.is_file() and not config.is_symlink()


def language_model_folders(inputs: list[Path]) -> list[Path]:
    """The causal LM folders of ``inputs``: each a model folder, or a folder of model folders (its
    subfolders that are model folders, in natural order). Anything else is an InputError naming it."""
    found: list[Path] = []
    for item in inputs:
        if is_model_folder(item):
            found.append(item)
        elif item.is_dir() and not item.is_symlink():
            inner = sorted(
                (p for p in item.iterdir() if is_model_folder(p) and not p.is_symlink()), key=natural_key
            )
            if not inner:
                raise InputError(
                    f"{item}: not a causal language model folder ({CONFIG_NAME} beside the weights) "
                    "and holds none; --task next-token tracks model folders"
                )
            found.extend(inner)
        else:
            raise InputError(
                f"{item}: --task next-token tracks causal language model folders; this is not one"
            )
    if not found:
        raise InputError("no checkpoints given")
    return found


def order_folders(folders: list[Path]) -> list[tuple[Path, int | None]]:
    """Model folders with the step their names state, ordered by it when every name states one (ties
    and the rest by natural name order)."""
    from nc_audit.measurement.trajectory import step_from_name  # loads torch: after the checks

    stepped = [(folder, step_from_name(folder)) for folder in folders]
    if all(step is not None for _, step in stepped):
        return sorted(stepped, key=lambda item: (item[1], natural_key(item[0])))
    return sorted(stepped, key=lambda item: natural_key(item[0]))
