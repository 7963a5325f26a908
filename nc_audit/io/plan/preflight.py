"""The input files of a command checked before the heavy machinery (torch) is loaded.

The command line calls these first, so that a hostile or broken input (a FIFO, a zip bomb, a dump
reading /etc/passwd, a sparse petabyte dataset, a complex head) is refused within a fraction of a
second, before PyTorch is imported. The same checks run again where the files are read: nothing
depends on this module having been called. Nothing here imports torch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from nc_audit.io.checkpoints.container import check_checkpoint_file
from nc_audit.io.data.specs import file_spec
from nc_audit.io.data.stream_spec import parse_stream_spec
from nc_audit.io.dumps.reader import DUMP_SUFFIXES, check_head, resolve_split


def data_file(spec: str | None) -> Path | None:
    """The file or folder a --data spec names (``data.npz``, ``data.h5:sha256=...``, an image folder, a
    table, a callable's .py file), or None for a built-in or a module's callable."""
    streamed = parse_stream_spec(spec)
    if streamed is not None:
        target = streamed.source.rpartition(":")[0] if streamed.kind == "callable" else streamed.source
        return Path(target).expanduser() if streamed.kind != "callable" or target.endswith(".py") else None
    named = file_spec(spec) if spec else None
    return Path(named[0]).expanduser() if named is not None else None


def check_measure_inputs(
    source: str | os.PathLike[str], features: str | os.PathLike[str] | None, split: str | None
) -> None:
    """``measure``'s files: the checkpoint's container, and the dump's split, datasets and head."""
    source = Path(source)
    if features is None and source.suffix.lower() in DUMP_SUFFIXES:
        resolve_split(source, split)
        check_head(source)
        return
    check_checkpoint_file(source)
    if features is not None:
        resolve_split(Path(features), split)
        check_head(Path(features))


#: What every study (and ``prune``) writes into its --out folder (nc_audit.experiments.studies.records).
STUDY_FILES = ("study.json", "runs.jsonl", "results.json")

#: What ``finetune --out DIR`` writes (besides DIR/epoch_XXX.pt).
FINETUNE_FILES = ("final.pt", "history.jsonl", "final_features.h5")


def finetune_outputs(
    out: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str] | None]
) -> dict[str, Path]:
    """The files ``finetune --out DIR`` writes, as outputs for :func:`nc_audit.io.plan.outputs.plan_outputs`,
    with every input that is named like an epoch checkpoint of DIR among them (it would be replaced)."""
    folder = Path(out)
    outputs = {f"--out {folder / name}": folder / name for name in FINETUNE_FILES}
    real_folder = os.path.realpath(folder)
    for item in inputs:
        if item is None:
            continue
        path = Path(os.fspath(item))
        if os.path.realpath(path.parent) == real_folder and re.fullmatch(r"epoch_\d+\.pt", path.name):
            outputs[f"--out {folder / path.name}"] = folder / path.name
    return outputs
