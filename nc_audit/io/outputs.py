"""Output planning: before a command reads or computes anything, check that what it will write never
replaces what it reads, nor another of its outputs.

``measure m.pt --features f.h5 --json f.h5`` would replace the dump by its own report, ``extract m.pt
--out m.pt`` the checkpoint by a dump, ``--json r.xml --junit r.xml`` one report by the other. Every
command (measure, track, extract, finetune, interpolate, demo) calls :func:`plan_outputs` with its
input files and its output options first; it raises InputError naming the option and the file when:

- an output path is empty or names a folder (``--json ''`` reaches the program as ``.``);
- an output is the same file as an input: same resolved path (symlinks followed), or the same inode
  (``os.path.samefile``: a hard link) when both exist;
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


def plan_outputs(
    outputs: Mapping[str, PathLike | None], inputs: Iterable[PathLike | None] = ()
) -> dict[str, Path]:
    """Check the outputs of one command against its inputs and each other (see the module docstring).

    ``outputs`` maps the option that names each output ("--json", "--out", ...) to its path (None: not
    asked for); ``inputs`` are the files the command reads. Returns the outputs asked for, as Paths."""
    planned: dict[str, Path] = {}
    seen: list[tuple[str, tuple[str, tuple[int, int] | None, bool]]] = []
    known_inputs = [(Path(p), _identity(p)) for p in inputs if p is not None and os.fspath(p) != ""]
    for option, raw in outputs.items():
        if raw is None:
            continue
        text = os.fspath(raw)
        if text in ("", ".") or (text.endswith(os.sep) and not os.path.exists(text)):
            raise InputError(
                f"{option} {text!r}: an empty path or the current folder; give the name of the file to write"
            )
        path = Path(raw)
        if path.is_dir():
            raise InputError(f"{option} {path}: a folder; give the name of the file to write")
        identity = _identity(path)
        for source, source_identity in known_inputs:
            if _same(identity, source_identity):
                raise InputError(
                    f"{option} {path}: the same file as the input {source}; writing it would replace the "
                    "input, so choose another path"
                )
        for other, other_identity in seen:
            if _same(identity, other_identity) and not (identity[2] and other_identity[2]):
                raise InputError(f"{option} {path}: the same file as {other}; give each output its own path")
        seen.append((option, identity))
        planned[option] = path
    return planned


def files_in(folder: PathLike, names: Iterable[str]) -> dict[str, Path]:
    """The files a command writes into ``folder`` (e.g. finetune's final.pt), keyed by a label for
    messages ("--out DIR/final.pt")."""
    return {f"--out {Path(folder) / name}": Path(folder) / name for name in names}
