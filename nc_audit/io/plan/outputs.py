"""Output planning: before a command reads or computes anything, check that what it will write never
replaces what it reads, nor another of its outputs.

``measure m.pt --features f.h5 --json f.h5`` would replace the dump by its own report, ``extract m.pt
--out m.pt`` the checkpoint by a dump, ``--json r.xml --junit r.xml`` one report by the other. Every
command (measure, track, extract, finetune, interpolate, prune, study, demo) calls :func:`plan_outputs`
with its input files and every file it will write (each output option, the files of its ``--out``
folder, and ``$GITHUB_STEP_SUMMARY`` where it appends to it) before it creates anything; it raises
InputError naming the option and the file when:

- an output path is empty or names a folder (``--json ''`` reaches the program as ``.``);
- an output is the same file as an input: same resolved path (symlinks and ``..`` followed), or the
  same inode (``os.path.samefile``: a hard link) when both exist. The inputs are every file the run
  reads (nc_audit.io.plan.input_files): each file of a model folder, the ``--model`` source file, and every
  file an HDF5 input reaches through external links, virtual-dataset sources or external storage;
- two outputs are the same file (except character devices and FIFOs such as ``/dev/stdout``, which
  take any number of writes).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from nc_audit.core.errors import InputError

PathLike = str | os.PathLike[str]


def _identity(path: PathLike) -> tuple[str, tuple[int, int] | None, bool]:
    """(resolved absolute path, (device, inode) when it exists, whether it is a device or FIFO)."""
    resolved = os.path.realpath(os.path.abspath(os.fspath(path)))
    try:
        info = os.stat(path)
    except OSError:
        return resolved, None, False
    stream = stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode)
    return resolved, (info.st_dev, info.st_ino), stream


def _same(a: tuple[str, tuple[int, int] | None, bool], b: tuple[str, tuple[int, int] | None, bool]) -> bool:
    return a[0] == b[0] or (a[1] is not None and a[1] == b[1])


def _input_identities(
    inputs: Iterable[PathLike | None], model: str | None
) -> list[tuple[Path, str, tuple[str, tuple[int, int] | None, bool]]]:
    """(file, how the run reaches it, identity) of every file the run reads."""
    from nc_audit.io.plan.input_files import expand_inputs, model_source_files

    found = []
    for item in inputs:
        if item is None or os.fspath(item) == "":
            continue
        named = Path(os.fspath(item))
        for path in expand_inputs([named]):
            if path == named:
                how = ""
            elif named.is_dir():
                how = f" (a file of the input folder {named})"
            else:
                how = f" (read through the HDF5 links of {named})"
            found.append((path, how, _identity(path)))
    for path in model_source_files(model):
        found.append((path, " (the --model source file)", _identity(path)))
    return found


def plan_outputs(
    outputs: Mapping[str, PathLike | None],
    inputs: Iterable[PathLike | None] = (),
    *,
    model: str | None = None,
    step_summary: bool = False,
) -> dict[str, Path]:
    """Check the outputs of one command against its inputs and each other (see the module docstring).

    ``outputs`` maps the option that names each output ("--json", "--out", ...) to its path (None: not
    asked for); ``inputs`` are the files (and folders) the command reads; ``model`` the ``--model`` spec;
    ``step_summary``: the command appends to ``$GITHUB_STEP_SUMMARY`` when it is set. Returns the
    outputs asked for, as Paths (the step summary not among them)."""
    asked = {option: raw for option, raw in outputs.items() if raw is not None}
    summary = os.environ.get("GITHUB_STEP_SUMMARY") if step_summary else None
    if summary:
        asked["GITHUB_STEP_SUMMARY"] = summary
    if not asked:
        return {}
    planned: dict[str, Path] = {}
    seen: list[tuple[str, tuple[str, tuple[int, int] | None, bool]]] = []
    known_inputs = _input_identities(inputs, model)
    for option, raw in asked.items():
        text = os.fspath(raw)
        if text in ("", ".") or (text.endswith(os.sep) and not os.path.exists(text)):
            raise InputError(
                f"{option} {text!r}: an empty path or the current folder; give the name of the file to write"
            )
        path = Path(raw)
        if path.is_dir():
            raise InputError(f"{option} {path}: a folder; give the name of the file to write")
        identity = _identity(path)
        for source, how, source_identity in known_inputs:
            if _same(identity, source_identity):
                verb = (
                    "appending to it would change"
                    if option == "GITHUB_STEP_SUMMARY"
                    else "writing it would replace"
                )
                raise InputError(
                    f"{option} {path}: the same file as the input {source}{how}; {verb} the input, so choose "
                    "another path"
                )
        for other, other_identity in seen:
            if _same(identity, other_identity) and not (identity[2] and other_identity[2]):
                raise InputError(f"{option} {path}: the same file as {other}; give each output its own path")
        seen.append((option, identity))
        if option != "GITHUB_STEP_SUMMARY":
            planned[option] = path
    return planned


def files_in(folder: PathLike, names: Iterable[str]) -> dict[str, Path]:
    """The files a command writes into ``folder`` (e.g. finetune's final.pt), keyed by a label for
    messages ("--out DIR/final.pt")."""
    return {f"--out {Path(folder) / name}": Path(folder) / name for name in names}
