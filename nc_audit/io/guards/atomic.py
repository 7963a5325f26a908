"""Atomic file writes: a reader sees the old file or the complete new one, never half of either.

Every file nc-audit writes (reports, plots, summaries, dumps, checkpoints) goes through here: the
bytes go to a temporary file in the target's folder, are flushed to disk, and the temporary file is
renamed over the target with ``os.replace`` (atomic on POSIX and Windows). Any failure or interruption
(an exception, Ctrl-C, SIGTERM turned into SystemExit by :mod:`nc_audit.core.signals`) removes the
temporary file and leaves the old target untouched.

What the target is decides how it is written (:func:`write_target`):

- a symlink (or a chain of them) is written *through*: the temporary file goes into the folder of the
  file it finally names, and is renamed over that file, so the link stays a link;
- a character device or a FIFO (``/dev/stdout``, ``/dev/null``, a named pipe) is written directly,
  opened for appending, never renamed over (as root, a rename would replace ``/dev/null``);
- anything else that is not a regular file (a folder, a socket) is refused.

A full disk (ENOSPC) or a file-size limit (EFBIG) is an InputError that says so: "no space left on the
device holding FOLDER (the previous file is intact)".
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nc_audit.core.errors import InputError
from nc_audit.core.signals import raise_if_terminated
from nc_audit.io.guards.files import describe_mode

_ERRNO_IN_TEXT = re.compile(r"errno\s*=\s*(\d+)")


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


def error_number(error: BaseException) -> int | None:
    """The errno behind an exception: its own, or one quoted in its text (HDF5 writes "errno = 28")."""
    number = getattr(error, "errno", None)
    if isinstance(number, int):
        return number
    match = _ERRNO_IN_TEXT.search(str(error))
    return int(match.group(1)) if match else None


def write_error(
    target: str | os.PathLike[str], error: BaseException, folder: Path | str | None = None
) -> InputError:
    """An InputError for a failed write of ``target`` (disk full and size limits said as such)."""
    folder = folder if folder is not None else (Path(target).parent if str(Path(target).parent) else ".")
    number = error_number(error)
    if number == errno.ENOSPC:
        return InputError(
            f"{target}: no space left on the device holding {folder} (the previous file is intact)"
        )
    if number == errno.EDQUOT:
        return InputError(f"{target}: disk quota exceeded on {folder} (the previous file is intact)")
    if number == errno.EFBIG:
        return InputError(f"{target}: file too large for the file-size limit (the previous file is intact)")
    reason = getattr(error, "strerror", None) or (
        os.strerror(number) if number else str(error).splitlines()[0]
    )
    return InputError(f"{target}: cannot write ({reason}); the old file, if any, is unchanged")


def resolve_output(path: str | os.PathLike[str]) -> tuple[Path, os.stat_result | None]:
    """(the file a write of ``path`` really replaces, its stat or None when it does not exist yet):
    a symlink chain is followed to its last target; a path with nothing there is itself."""
    target = Path(path)
    try:
        info = os.stat(target)
    except FileNotFoundError:
        info = None
    except OSError as error:
        raise InputError(f"{path}: cannot write ({error.strerror or error})") from None
    if os.path.islink(target):
        target = Path(os.path.realpath(target))
    return target, info


def is_stream(info: os.stat_result | None) -> bool:
    """Whether an existing output is a character device or a FIFO: written directly, never replaced."""
    return info is not None and (stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside the file ``path`` names; when the block ends normally it is
    renamed over that file (through symlinks: the link stays a link).

    For writers that need a file name (h5py, torch.save, safetensors). On any exception the temporary
    file is removed and an existing file at ``path`` is left as it was; an OSError (missing folder, no
    permission, disk full) becomes an InputError naming the path. A device or FIFO cannot take a
    renamed file: it is refused here (use :func:`write_target` for bytes).
    """
    target, info = resolve_output(path)
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise InputError(f"{path}: {describe_mode(info.st_mode)}, not a file nc-audit can replace")
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        if error_number(exc) in (errno.ENOSPC, errno.EDQUOT):
            raise write_error(path, exc, folder) from None
        reason = exc.strerror or str(exc)
        raise InputError(
            f"{path}: cannot write ({reason}); check that {folder} exists and is writable"
        ) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        raise_if_terminated()  # a SIGTERM whose exception got lost never completes a write
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _new_file_mode(target))
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise write_error(path, exc, folder) from None
        raise
    _fsync_folder(folder)


def _write_stream(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to a device or FIFO as it is (appending: /dev/stdout redirected to a file keeps
    what came before)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0))
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    except OSError as error:
        raise write_error(path, error) from None


def write_target(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path``: atomically to a regular file (through symlinks), directly to a
    character device or FIFO (see the module docstring)."""
    _, info = resolve_output(path)
    if is_stream(info):
        import sys

        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()  # /dev/stdout: what was printed comes first
        _write_stream(path, data)
        return
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def new_folder(path: str | os.PathLike[str], what: str = "the folder") -> Iterator[Path]:
    """Create the folder ``path`` (and missing parents) for the block's outputs; when the block fails,
    remove again the folders it created that are still empty, so a failed run leaves nothing behind.
    ``what`` names the folder in the message when it cannot be created."""
    folder = Path(path)
    created = []
    for candidate in (folder, *folder.parents):
        if candidate.exists() or str(candidate) in ("", "."):
            break
        created.append(candidate)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        if error_number(error) == errno.ENOSPC:
            raise write_error(folder, error, folder.parent) from None
        raise InputError(f"{folder}: cannot create {what} ({error.strerror or error})") from None
    try:
        yield folder
    except BaseException:
        for made in created:  # deepest first
            with contextlib.suppress(OSError):
                made.rmdir()
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` (atomically for a file; see :func:`write_target`)."""
    write_target(path, data)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` (see ``atomic_write_bytes``); newlines are written as given; a lone
    surrogate (a non-UTF-8 file name in the text) is written as a backslash escape."""
    atomic_write_bytes(path, text.encode(encoding, "backslashreplace"))
