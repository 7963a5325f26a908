"""A feature dump written batch by batch, resumable after an interruption (next-token extraction).

The rows go into a partial file beside the target, ``.NAME.resume.tmp`` (one process) or
``.NAME.rankRofW.tmp`` (rank R of W under torchrun). After each batch the file is flushed and its
``batches_done`` attribute advanced, so a killed run leaves a partial file that a later run with the
same ``resume_key`` (model, corpus, tokenizer, context: everything the rows depend on) continues from
the last completed batch; a partial file with another key, or one HDF5 cannot open, is started over.
When complete the partial file gets the dump's attributes and is renamed over the target (atomic);
under torchrun rank 0 copies the ranks' rows, in rank order, into the target and removes the parts.
Layout: the minimal root form (``/features`` float32, ``/labels`` int64, ``/head``); no ``/logits``
(N × V would dwarf the features at vocabulary scale).
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

import h5py
import numpy as np
import torch

from nc_audit.core.formats import DUMP_FORMAT
from nc_audit.core.signals import raise_if_terminated
from nc_audit.core.version import __version__
from nc_audit.io.dumps.writer import CHUNK_ROWS
from nc_audit.io.guards.atomic import error_number, resolve_output, write_error

#: Rows copied at once when joining the ranks' parts.
COPY_ROWS = 1 << 16


def partial_path(target: Path, rank: int = 0, world_size: int = 1) -> Path:
    """Where the rows of ``target`` (or of one rank's part of it) are built."""
    tag = "resume" if world_size == 1 else f"rank{rank}of{world_size}"
    return target.parent / f".{target.name}.{tag}.tmp"


def output_target(path: Path | str) -> Path:
    """The file a dump written to ``path`` replaces (through symlinks)."""
    return resolve_output(path)[0]


class PartialDump:
    """An open partial dump of ``num_rows`` rows of dimension ``feature_dim``."""

    def __init__(self, path: Path, key: str, num_rows: int, feature_dim: int) -> None:
        self.path = path
        self.handle = self._resume(key, num_rows, feature_dim) or self._create(key, num_rows, feature_dim)
        self.features = self.handle["features"]
        self.labels = self.handle["labels"]

    @property
    def batches_done(self) -> int:
        return int(self.handle.attrs["batches_done"])

    def _resume(self, key: str, num_rows: int, feature_dim: int) -> h5py.File | None:
        if not self.path.is_file() or self.path.is_symlink():
            return None
        try:
            handle = h5py.File(self.path, "r+")
        except OSError:
            return None
        try:
            same = (
                all(_own_dataset(handle, name) for name in ("features", "labels"))
                and handle.attrs.get("resume_key") == key
                and handle["features"].shape == (num_rows, feature_dim)
                and handle["labels"].shape == (num_rows,)
            )
        except (KeyError, OSError):
            same = False
        if not same:
            handle.close()
            return None
        return handle

    def _create(self, key: str, num_rows: int, feature_dim: int) -> h5py.File:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        try:
            handle = h5py.File(self.path, "w")
        except OSError as error:
            raise write_error(self.path, error) from None
        chunk = min(CHUNK_ROWS, max(num_rows, 1))
        handle.create_dataset(
            "features", (num_rows, feature_dim), "float32", chunks=(chunk, max(feature_dim, 1))
        )
        handle.create_dataset("labels", (num_rows,), "int64", chunks=(chunk,))
        handle.attrs["resume_key"] = key
        handle.attrs["batches_done"] = 0
        handle.flush()
        return handle

    def write(self, row: int, features: torch.Tensor, labels: np.ndarray, batches_done: int) -> None:
        """Rows [row, row + n) of one batch, then mark ``batches_done`` batches complete."""
        raise_if_terminated()
        n = int(labels.shape[0])
        if n:
            self.features[row : row + n] = features.detach().to("cpu", torch.float32).numpy()
            self.labels[row : row + n] = labels
        self.handle.flush()  # the rows are on disk before the mark that says so
        self.handle.attrs["batches_done"] = batches_done
        self.handle.flush()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.handle.close()

    def fail(self, error: BaseException) -> None:
        """After a failed write: a full disk removes the partial file (InputError); an interruption
        keeps it, to be resumed."""
        self.close()
        if error_number(error) in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            raise write_error(self.path, error) from None


def _own_dataset(handle: h5py.File, name: str) -> bool:
    """A dataset stored in this file: no link, no external storage, no virtual sources (a resumed file
    is written into; nothing may lead the writes elsewhere)."""
    if not isinstance(handle.get(name, getlink=True), h5py.HardLink):
        return False
    node = handle.get(name)
    return isinstance(node, h5py.Dataset) and not node.is_virtual and node.external is None


def finish(
    partial: Path,
    target: Path,
    attrs: dict[str, str],
    head_weight: torch.Tensor,
    head_bias: torch.Tensor | None,
    head_name: str,
) -> Path:
    """Give the complete partial dump its attributes and head, and rename it over ``target``."""
    try:
        with h5py.File(partial, "r+") as handle:
            for name in ("resume_key", "batches_done"):
                del handle.attrs[name]
            handle.attrs["format"] = DUMP_FORMAT
            handle.attrs["created_by"] = f"nc-audit {__version__}"
            for key, value in attrs.items():
                handle.attrs[key] = value
            group = handle.create_group("head")
            group.attrs["name"] = head_name
            group.create_dataset("weight", data=head_weight.detach().to("cpu", torch.float64).numpy())
            if head_bias is not None:
                group.create_dataset("bias", data=head_bias.detach().to("cpu", torch.float64).numpy())
        os.replace(partial, target)
    except OSError as error:
        raise write_error(target, error) from None
    return target


def join_parts(parts: list[Path], partial: Path, key: str, num_rows: int, feature_dim: int) -> Path:
    """Copy the ranks' parts, in rank order, into one partial dump (streamed), and remove the parts."""
    joined = PartialDump(partial, key, num_rows, feature_dim)
    row = 0
    try:
        for part in parts:
            with h5py.File(part, "r") as handle:
                features, labels = handle["features"], handle["labels"]
                for start in range(0, labels.shape[0], COPY_ROWS):
                    stop = min(start + COPY_ROWS, labels.shape[0])
                    block = torch.from_numpy(np.asarray(features[start:stop]))
                    joined.write(row, block, np.asarray(labels[start:stop]), 0)
                    row += stop - start
    except BaseException as error:
        joined.fail(error)
        raise
    joined.close()
    for part in parts:
        with contextlib.suppress(OSError):
            os.unlink(part)
    return partial
