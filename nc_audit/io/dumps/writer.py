"""Writing feature dumps in nc-audit's own form (docs/DESIGN.md, ``nc-audit-features/1``), atomically.

The file is built under a temporary name beside the target and renamed only when every split is
complete, so an interrupted extraction never leaves a dump that looks complete.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import torch

from nc_audit.core.formats import DUMP_FORMAT
from nc_audit.core.signals import raise_if_terminated
from nc_audit.core.version import __version__
from nc_audit.io.guards.atomic import atomic_path, error_number, write_error

#: Rows per HDF5 chunk along N (reads stream chunk by chunk).
CHUNK_ROWS = 4096


class SplitWriter:
    """Appends (features, labels, logits) batches to one split's datasets."""

    def __init__(self, group: h5py.Group, num_samples: int, feature_dim: int, num_classes: int) -> None:
        chunk = (min(CHUNK_ROWS, max(num_samples, 1)),)
        self.features = group.create_dataset(
            "features", (num_samples, feature_dim), "float32", chunks=(*chunk, feature_dim)
        )
        self.labels = group.create_dataset("labels", (num_samples,), "int64", chunks=chunk)
        self.logits = group.create_dataset(
            "logits", (num_samples, num_classes), "float32", chunks=(*chunk, num_classes)
        )
        self.written = 0

    def append(self, features: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor) -> None:
        """Write one batch at the next rows. features (n, d), labels (n,), logits (n, C)."""
        raise_if_terminated()  # stop writing once SIGTERM came, even if its exception was swallowed
        n = int(labels.shape[0])
        rows = slice(self.written, self.written + n)
        self.features[rows] = features.detach().to("cpu", torch.float32).numpy()
        self.labels[rows] = labels.detach().to("cpu", torch.int64).numpy()
        self.logits[rows] = logits.detach().to("cpu", torch.float32).numpy()
        self.written += n


class DumpWriter:
    """An open dump under construction; see :func:`write_dump`."""

    def __init__(self, handle: h5py.File) -> None:
        self.handle = handle
        # Every split's datasets stay referenced until the file is closed: a dataset freed earlier would
        # flush its chunk cache from h5py's deallocator, where a failed write (disk full) cannot raise.
        self._splits: list[SplitWriter] = []

    def split(self, name: str, num_samples: int, feature_dim: int, num_classes: int) -> SplitWriter:
        """Create the datasets of split ``name`` (a group /name)."""
        if self._splits:
            self.handle.flush()  # the previous split's cached chunks: a failed write raises here
        writer = SplitWriter(self.handle.create_group(name), num_samples, feature_dim, num_classes)
        self._splits.append(writer)
        return writer

    def head(self, weight: torch.Tensor, bias: torch.Tensor | None, name: str) -> None:
        """Store the classifier head so that the dump alone can be measured."""
        group = self.handle.create_group("head")
        group.attrs["name"] = name
        group.create_dataset("weight", data=weight.detach().to("cpu", torch.float64).numpy())
        if bias is not None:
            group.create_dataset("bias", data=bias.detach().to("cpu", torch.float64).numpy())


@contextmanager
def write_dump(path: Path | str, attrs: dict[str, str]) -> Iterator[DumpWriter]:
    """Build a dump at ``path``: visible only once the block completes (temporary file + rename).

    A failed write (disk full) or an interruption (Ctrl-C, SIGTERM) abandons the temporary file
    (:func:`_abandon`) and removes it; a full disk is an InputError that says so."""
    with atomic_path(path) as tmp:
        handle = h5py.File(tmp, "w")
        try:
            handle.attrs["format"] = DUMP_FORMAT
            handle.attrs["created_by"] = f"nc-audit {__version__}"
            for key, value in attrs.items():
                handle.attrs[key] = np.bytes_(str(value)) if not isinstance(value, str) else value
            yield DumpWriter(handle)
            handle.close()
        except BaseException as error:
            _abandon(handle)
            if error_number(error) in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
                raise write_error(path, error, Path(tmp).parent) from None
            raise


def _abandon(handle: h5py.File) -> None:
    """Close a dump whose writing failed without letting HDF5 write into the failed file again.

    After a failed write HDF5 still holds dirty chunks and metadata; closing the file flushes them,
    which fails again on a full disk (or past a file-size limit), leaves the file open inside HDF5,
    prints "Exception ignored" tracebacks as h5py objects are freed, and crashes the interpreter at
    exit (SIGSEGV in HDF5's clean-up). So the descriptor HDF5 writes to is first pointed at the null
    device (``dup2``): the last flush is discarded (null-device writes are bound by neither disk space
    nor RLIMIT_FSIZE), the close succeeds, and :func:`nc_audit.io.guards.atomic.atomic_path` removes the
    temporary file."""
    if not handle.id.valid:
        return
    with contextlib.suppress(Exception):
        fd = handle.id.get_vfd_handle()
        if isinstance(fd, int) and fd >= 0:
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, fd)
            os.close(null)
    with contextlib.suppress(Exception):
        handle.close()
