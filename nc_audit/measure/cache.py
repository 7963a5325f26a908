"""The feature cache: dumps extracted on the fly, keyed by checkpoint sha256 + dataset + splits.

Default location: $NC_AUDIT_CACHE, else $XDG_CACHE_HOME/nc-audit, else ~/.cache/nc-audit;
``--cache-dir`` or ``cache-dir`` in [tool.nc-audit] override it.

``nc-audit cache list|clear`` (:func:`cache_entries`, :func:`clear_cache`) see only nc-audit's own files
in that folder — dumps named ``<sha256[:12]>-<key[:20]>.h5`` and the ``.<name>.*.tmp`` files an
interrupted extraction leaves — never other files, subfolders or symbolic links. A hit refreshes the
dump's modification time, so ``--older-than DAYS`` removes what has not been used for that long.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nc_audit.core.errors import InputError
from nc_audit.core.progress import Tracker
from nc_audit.io.atomic import new_folder


def default_cache_dir() -> Path:
    """Where cached dumps live unless told otherwise."""
    if os.environ.get("NC_AUDIT_CACHE"):
        return Path(os.environ["NC_AUDIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nc-audit"


def cache_path(
    cache_dir: Path,
    checkpoint_sha256: str,
    dataset_spec: str,
    splits: list[str],
    model_spec: str | None,
    head: str | None = None,
    model_args: tuple[str, ...] = (),
) -> Path:
    """The dump file for one (checkpoint, dataset, splits, model factory and arguments, head) combination."""
    parts = [checkpoint_sha256, dataset_spec, ",".join(sorted(splits)), model_spec or "", head or ""]
    if model_args:  # only then, so the keys of earlier caches stay valid
        parts.append("\x1f".join(model_args))
    key = "\n".join(parts)
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return cache_dir / f"{checkpoint_sha256[:12]}-{digest}.h5"


def ensure_cache_dir(cache_dir: Path) -> Path:
    """Create the cache folder; an unusable one is an InputError naming it."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(
            f"{cache_dir}: cannot create the feature cache ({error.strerror}); pass --cache-dir"
        ) from None
    return cache_dir


def entry_problem(path: Path, splits: list[str]) -> str | None:
    """Why a cache entry cannot be used as it is (None when it can): not a regular file (a symlink is
    never followed: the cache folder may be shared), not a readable dump, or a split missing."""
    from nc_audit.io.dumps import check_head, resolve_split

    if os.path.islink(path) or not path.is_file():
        return "not a regular file"
    try:
        for split in splits:
            resolve_split(path, split)
        if check_head(path) is None:
            return "no /head/weight"
    except InputError as error:
        return str(error).removeprefix(f"{path}: ")
    return None


def _remove_entry(path: Path, problem: str) -> None:
    try:
        path.unlink()
    except OSError as error:
        raise InputError(
            f"{path}: a damaged feature cache entry ({problem}) that cannot be removed "
            f"({error.strerror or error}); delete it or pass another --cache-dir"
        ) from None


def cached_dump(
    checkpoint_path: Path | str,
    data: str,
    *,
    cache_dir: Path | None = None,
    model_spec: str | None = None,
    head: str | None = None,
    device: str = "cpu",
    tracker: Tracker | None = None,
    splits: list[str] | None = None,
    model_args: tuple[str, ...] = (),
    on_rebuild: Callable[[str], None] | None = None,
) -> tuple[Path, bool]:
    """The dump of ``splits`` (default: every split) of ``data`` through the checkpoint's model: from the
    cache, or extracted into it now. Returns (path, hit) — hit is True when no forward pass was needed.
    A damaged entry (truncated, not a regular file, missing a split) is removed and rebuilt;
    ``on_rebuild`` receives a note saying so."""
    from nc_audit.io.checkpoint_files import check_checkpoint_file
    from nc_audit.io.checkpoints import source_sha256
    from nc_audit.io.datasets import dataset_splits, load_dataset
    from nc_audit.models.extract import extract
    from nc_audit.models.factories import parse_model_args

    checkpoint_path = Path(checkpoint_path)
    check_checkpoint_file(checkpoint_path)  # a regular file (or a folder), not a zip bomb: before hashing
    splits = splits or dataset_splits(data)
    spec = load_dataset(data, splits[0]).spec
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    sha = source_sha256(checkpoint_path)
    path = cache_path(folder, sha, spec, splits, model_spec, head, tuple(model_args))
    if os.path.lexists(path):
        problem = entry_problem(path, splits)
        if problem is None:
            try:
                os.utime(path)  # "last used": clear --older-than keeps what is in use
            except OSError:
                pass  # a read-only cache still serves hits
            return path, True
        _remove_entry(path, problem)
        if on_rebuild is not None:
            on_rebuild(f"The feature cache entry {path} was damaged ({problem}); it was rebuilt.")
    # a failed fill (disk full) leaves no empty cache folder behind
    with new_folder(folder, "the feature cache; pass --cache-dir"):
        extract(
            checkpoint_path,
            data,
            path,
            splits=splits,
            model_spec=model_spec,
            head=head,
            model_args=parse_model_args(model_args),
            device=device,
            tracker=tracker,
        )
    return path, False


#: nc-audit's own files in a cache folder: finished dumps, and temporary files of interrupted extractions.
DUMP_NAME = re.compile(r"^[0-9a-f]{12}-[0-9a-f]{20}\.h5$")
PARTIAL_NAME = re.compile(r"^\.[0-9a-f]{12}-[0-9a-f]{20}\.h5\.[^/]*\.tmp$")


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
            except FileNotFoundError:
                continue
            except OSError as error:
                raise InputError(
                    f"{entry.path}: cannot remove it from the cache ({error.strerror})"
                ) from None
            removed.append(entry)
    finally:
        os.close(folder)
    return removed
