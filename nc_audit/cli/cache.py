"""`nc-audit cache list|clear`: what the feature cache of `--data` holds, and removing it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nc_audit.cli.common import Command, cli_errors, command_group, print_stdout

Opt = typer.Option

cache_app = command_group("The feature cache of --data: list its dumps with their sizes, or clear them.")

CacheDirOpt = Annotated[
    Path | None,
    Opt(
        metavar="DIR",
        help="Cache folder. [default: cache-dir of [tool.nc-audit], else $NC_AUDIT_CACHE, else "
        "$XDG_CACHE_HOME/nc-audit, else ~/.cache/nc-audit]",
    ),
]


def _folder(cache_dir: Path | None) -> Path:
    from nc_audit.cli.project import project_cache_dir
    from nc_audit.measurement.cache_files import default_cache_dir

    return project_cache_dir(cache_dir) or default_cache_dir()


def human_size(size: int) -> str:
    """Bytes as a person reads them: 512 B, 3.4 kB, 24.0 MB, 1.2 GB (powers of 1000)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _proof(path: Path, size: int, key: bytes | None) -> str:
    """ "proven" when the entry's proof is signed by this user's key for a file of this size (measure
    also checks the bytes' sha256 before reusing it), else "unproven" (never reused)."""
    from nc_audit.io.guards.cache_proof import signed_proof

    document = signed_proof(path, key) if key is not None else None
    return "proven" if document is not None and document.get("size") == size else "unproven (not reused)"


def _describe(path: Path) -> str:
    """Dataset and checkpoint a cached dump was extracted from (its root attributes), or why not."""
    from nc_audit.io.dumps.reader import read_attrs

    try:
        attrs = read_attrs(path)
    except Exception:  # an unreadable or foreign file still lists, by size
        return "unreadable"
    dataset = attrs.get("dataset") or "?"
    dataset = dataset if len(dataset) <= 40 else dataset[:39] + "…"
    return f"{dataset}  {Path(attrs.get('checkpoint_path') or '?').name}"


def _key(folder: Path) -> bytes | None:
    from nc_audit.core.errors import InputError
    from nc_audit.io.guards.cache_proof import load_key

    try:
        return load_key(folder)
    except InputError:
        return None


@cache_app.command("list", cls=Command)
@cli_errors
def list_command(cache_dir: CacheDirOpt = None) -> None:
    """List nc-audit's cached feature dumps: size, days since last use, dataset, checkpoint, and whether
    the entry is proven (written by your nc-audit: only those are reused)."""
    from nc_audit.measurement.cache_files import cache_entries

    folder = _folder(cache_dir)
    entries = cache_entries(folder)
    key = _key(folder)
    lines = [f"cache {folder}"]
    for entry in entries:
        if entry.partial:
            what = "partial (interrupted extraction)"
        else:
            what = f"{_describe(entry.path)}  {_proof(entry.path, entry.size, key)}"
        lines.append(f"{human_size(entry.size):>9}  {entry.age_days():6.1f} d  {entry.path.name}  {what}")
    total = sum(entry.size for entry in entries)
    lines.append(f"{len(entries)} file(s), {human_size(total)}")
    print_stdout("\n".join("".join(ch if ch.isprintable() else "?" for ch in line) for line in lines))


@cache_app.command("clear", cls=Command)
@cli_errors
def clear_command(
    older_than: Annotated[
        float | None,
        Opt(metavar="DAYS", min=0, help="Only files not used for more than DAYS days. [default: every file]"),
    ] = None,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Remove nc-audit's cached dumps and their proofs (only its own files; never other files, folders or
    links)."""
    from nc_audit.measurement.cache_files import cache_entries, clear_cache

    folder = _folder(cache_dir)
    removed = clear_cache(folder, older_than)
    kept = cache_entries(folder)
    freed = human_size(sum(entry.size for entry in removed))
    print_stdout(f"removed {len(removed)} file(s), {freed}, from {folder}; {len(kept)} kept")
