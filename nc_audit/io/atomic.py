"""Atomic file writes: a reader sees the old file or the complete new one, never half of either.

Every file nc-audit writes (reports, plots, summaries) goes through here: the bytes go to a temporary
file in the target's folder, are flushed to disk, and the temporary file is renamed over the target
with ``os.replace`` (atomic on POSIX and Windows). Any failure removes the temporary file and leaves
the old target untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nc_audit.core.errors import InputError


def _new_file_mode(path: Path) -> int:
    """Permission bits for the written file: the old file's, else 0o666 minus the process umask."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable where the platform allows it (best effort)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends normally it is renamed over ``path``.

    For writers that need a file name (h5py, torch.save, safetensors). On any exception the temporary
    file is removed and an existing file at ``path`` is left as it was; an OSError (missing folder, no
    permission, disk full) becomes an InputError naming the path.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InputError(
            f"{target}: cannot write ({reason}); check that {folder} exists and is writable"
        ) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _new_file_mode(target))
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
            raise InputError(
                f"{target}: cannot write ({reason}); the old file, if any, is unchanged"
            ) from exc
        raise
    _fsync_folder(folder)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, ``os.replace``)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see ``atomic_write_bytes``); newlines are written as given."""
    atomic_write_bytes(path, text.encode(encoding))
