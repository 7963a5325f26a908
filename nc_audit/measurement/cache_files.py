"""nc-audit's own files in a feature-cache folder, for ``nc-audit cache list|clear``: finished dumps
(``<sha256[:12]>-<key[:20]>.h5``) with their proofs (``.h5.proof``, nc_audit.io.guards.cache_proof), and the
``.<name>.*.tmp`` files an interrupted extraction leaves — never other files, subfolders or symbolic
links. A hit refreshes the dump's modification time, so ``--older-than DAYS`` removes what has not been
used for that long.
"""

from __future__ import annotations

import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from nc_audit.core.errors import InputError
from nc_audit.io.guards.cache_proof import PROOF_SUFFIX


def default_cache_dir() -> Path:
    """Where cached dumps live unless told otherwise."""
    if os.environ.get("NC_AUDIT_CACHE"):
        return Path(os.environ["NC_AUDIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nc-audit"


#: nc-audit's own files in a cache folder: finished dumps, and temporary files of interrupted extractions.
DUMP_NAME = re.compile(r"^[0-9a-f]{12}-[0-9a-f]{20}\.h5$")
PARTIAL_NAME = re.compile(r"^\.[0-9a-f]{12}-[0-9a-f]{20}\.h5\.[^/]*\.tmp$")
PROOF_NAME = re.compile(r"^[0-9a-f]{12}-[0-9a-f]{20}\.h5\.proof$")


def _unlink_regular(name: str, folder: int) -> None:
    """Remove the regular file ``name`` of the opened folder, if there (a link or folder is left alone)."""
    try:
        if stat.S_ISREG(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
            os.unlink(name, dir_fd=folder)
    except FileNotFoundError:
        pass


def _orphan_proofs(folder: int) -> None:
    """Remove the proofs whose dump is gone (``cache clear`` leaves none of nc-audit's files)."""
    names = set(os.listdir(folder))
    for name in names:
        if PROOF_NAME.match(name) and name.removesuffix(PROOF_SUFFIX) not in names:
            _unlink_regular(name, folder)


@dataclass(frozen=True)
class CacheEntry:
    """One of nc-audit's files in the cache: its name, size in bytes, last use (mtime) and whether it is
    the leftover of an interrupted extraction."""

    path: Path
    size: int
    mtime: float
    partial: bool
    inode: tuple[int, int]

    def age_days(self, now: float | None = None) -> float:
        return max(0.0, ((time.time() if now is None else now) - self.mtime) / 86400.0)


def _open_folder(cache_dir: Path) -> int | None:
    """A descriptor of the cache folder (None when it does not exist); other errors are InputErrors."""
    try:
        return os.open(cache_dir, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise InputError(f"{cache_dir}: cannot read the feature cache ({error.strerror})") from None


def _entries(cache_dir: Path, folder: int) -> list[CacheEntry]:
    found = []
    for name in os.listdir(folder):
        partial = bool(PARTIAL_NAME.match(name))
        if not (partial or DUMP_NAME.match(name)):
            continue
        try:
            info = os.stat(name, dir_fd=folder, follow_symlinks=False)
        except FileNotFoundError:
            continue  # removed meanwhile
        if stat.S_ISREG(info.st_mode):  # a symbolic link or anything else is not ours to touch
            found.append(
                CacheEntry(cache_dir / name, info.st_size, info.st_mtime, partial, (info.st_dev, info.st_ino))
            )
    return sorted(found, key=lambda entry: (entry.mtime, entry.path.name))


def cache_entries(cache_dir: Path | None = None) -> list[CacheEntry]:
    """nc-audit's files in the cache folder (default: :func:`default_cache_dir`), least recently used first."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = _open_folder(cache_dir)
    if folder is None:
        return []
    try:
        return _entries(cache_dir, folder)
    finally:
        os.close(folder)


def clear_cache(
    cache_dir: Path | None = None, older_than_days: float | None = None, now: float | None = None
) -> list[CacheEntry]:
    """Remove nc-audit's files from the cache folder (those unused for more than ``older_than_days``, or
    all) and return them. Each file goes with one ``unlink`` inside the opened folder — whole or not at
    all, a link never followed; a file replaced since it was listed is left alone."""
    if older_than_days is not None and not older_than_days >= 0:
        raise InputError(f"--older-than {older_than_days}: expected a number of days >= 0")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = _open_folder(cache_dir)
    if folder is None:
        return []
    removed = []
    try:
        for entry in _entries(cache_dir, folder):
            if older_than_days is not None and entry.age_days(now) <= older_than_days:
                continue
            try:
                info = os.stat(entry.path.name, dir_fd=folder, follow_symlinks=False)
                if (info.st_dev, info.st_ino) != entry.inode or not stat.S_ISREG(info.st_mode):
                    continue
                os.unlink(entry.path.name, dir_fd=folder)
                _unlink_regular(entry.path.name + PROOF_SUFFIX, folder)  # the dump's proof goes with it
            except FileNotFoundError:
                continue
            except OSError as error:
                raise InputError(
                    f"{entry.path}: cannot remove it from the cache ({error.strerror})"
                ) from None
            removed.append(entry)
        if older_than_days is None:
            _orphan_proofs(folder)
    finally:
        os.close(folder)
    return removed
