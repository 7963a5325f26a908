"""The shard index of a sharded Hugging Face checkpoint (``*.index.json``), read as untrusted data.

An index maps tensor names to shard files. nc-audit reads the shards itself (to find the head and hash
the folder), so every shard must be a plain file inside the folder: a name that is absolute, climbs out
(``../outside/x``), runs through a symlink leaving the folder, or names something other than a regular
file (a FIFO, a device, /proc) is refused, naming the index and the shard. The index itself is bounded
(MAX_INDEX_BYTES, at most MAX_SHARDS shards).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from nc_audit.core.errors import InputError
from nc_audit.io.guards.files import describe_mode, is_pseudo_file, load_json

#: Largest shard index read (a real one of a 400-layer model is about 100 KB).
MAX_INDEX_BYTES = 16 * 2**20
#: Most distinct shard files an index may name.
MAX_SHARDS = 4096


def _shard_problem(folder: Path, shard: object) -> str | None:
    """Why ``shard`` (a name from the index) is not a plain file inside ``folder``, or None."""
    if not isinstance(shard, str) or not shard or "\0" in shard:
        return "is not a file name"
    if os.path.isabs(shard) or shard.startswith("~"):
        return "is an absolute path (shards must lie inside the folder)"
    if ".." in Path(shard).parts:
        return "climbs out of the folder (shards must lie inside it)"
    path = folder / shard
    root = os.path.realpath(folder)
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        return "leads out of the folder through a symbolic link (shards must lie inside it)"
    try:
        info = os.stat(real)
    except OSError:
        return "is missing beside it"
    if not stat.S_ISREG(info.st_mode) or is_pseudo_file(real):
        return f"is not a regular file ({describe_mode(info.st_mode)})"
    return None


def shard_files(index_path: Path) -> list[Path]:
    """The shard files an index names (sorted, each a regular file inside its folder), else InputError."""
    folder = index_path.parent
    try:
        index = load_json(index_path, "shard index", cap=MAX_INDEX_BYTES)
        shards = set(index["weight_map"].values())
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InputError(f"{index_path}: not a readable shard index (expected a weight_map)") from None
    if len(shards) > MAX_SHARDS:
        raise InputError(f"{index_path}: names {len(shards)} shard files (at most {MAX_SHARDS})")
    for shard in sorted(shards, key=repr):
        problem = _shard_problem(folder, shard)
        if problem is not None:
            shown = repr(shard)[:80] if isinstance(shard, str) else type(shard).__name__
            raise InputError(f"{index_path}: shard {shown} {problem}; refused")
    return [folder / shard for shard in sorted(shards)]
