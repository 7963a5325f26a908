"""A checkpoint file's container checked before ``torch.load`` or safetensors reads a byte of it.

``torch.load`` on a FIFO waits forever, on an empty or truncated file says "EOFError" or "Invalid
argument", and on a zip archive whose records are deflated (``torch.save`` never compresses) inflates
every record into memory: 2 MB can declare 2 GiB. :func:`check_checkpoint_file` refuses, with one line
naming the file:

- anything but a regular file (FIFO, device, folder, /proc or /sys pseudo-file);
- an empty file, a zip archive that is truncated or damaged, or one without ``data.pkl``;
- a zip archive whose records declare more uncompressed bytes than MAX_EXPANSION times its size plus
  EXPANSION_SLACK (a zip bomb);
- a ``.pt`` file that is neither a zip archive nor a pickle (random bytes are "not a PyTorch
  checkpoint", not "could execute code").

Nothing here imports torch.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from nc_audit.core.errors import InputError, first_line
from nc_audit.io.checkpoints.run_files import check_not_side_file
from nc_audit.io.guards.files import human_bytes, regular_file

#: Suffixes read with torch.load (the safetensors suffix is read by safetensors).
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"
#: A checkpoint's records may declare at most this many times the file's size, plus EXPANSION_SLACK.
MAX_EXPANSION = 4
EXPANSION_SLACK = 64 * 2**20
_NOT_READABLE = "not a readable PyTorch checkpoint"


def check_checkpoint_file(path: str | os.PathLike[str]) -> os.stat_result:
    """The checkpoint's ``stat`` when its container may be handed to torch.load / safetensors; else
    InputError naming the file and the problem (see the module docstring)."""
    path = Path(path)
    if path.is_dir():  # a Hugging Face save_pretrained folder: its files are checked as they are read
        return os.stat(path)
    check_not_side_file(path)  # a Trainer's optimizer.pt / rng_state.pth / training_args.bin: never read
    info = regular_file(path, "checkpoint", missing=f"{path}: no such checkpoint file")
    if path.suffix.lower() in TORCH_SUFFIXES:
        _check_torch_container(path, info.st_size)
    return info


def _check_torch_container(path: Path, size: int) -> None:
    if size == 0:
        raise InputError(f"{path}: {_NOT_READABLE} (the file is empty)")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic.startswith(b"PK"):
        _check_zip(path, size)
    elif not magic.startswith(b"\x80"):  # the legacy format is a pickle stream (protocol 2+)
        raise InputError(
            f"{path}: {_NOT_READABLE} (neither a zip archive, which torch.save writes, nor a legacy pickle)"
        )


def _check_zip(path: Path, size: int) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise InputError(
            f"{path}: {_NOT_READABLE} (a truncated or damaged zip archive: {first_line(error)})"
        ) from None
    if not any(record.filename.endswith("data.pkl") for record in records):
        raise InputError(f"{path}: {_NOT_READABLE} (a zip archive without data.pkl)")
    declared = sum(record.file_size for record in records)
    if declared > MAX_EXPANSION * size + EXPANSION_SLACK:
        biggest = max(records, key=lambda record: record.file_size)
        raise InputError(
            f"{path}: its records declare {human_bytes(declared)} uncompressed in a {human_bytes(size)} file "
            f"('{biggest.filename}' alone {human_bytes(biggest.file_size)}); refused as a zip bomb "
            "(torch.save does not compress)"
        )
