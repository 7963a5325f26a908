"""The feature cache: dumps extracted on the fly, keyed by checkpoint sha256 + dataset + splits.

Default location: $NC_AUDIT_CACHE, else $XDG_CACHE_HOME/nc-audit, else ~/.cache/nc-audit;
``--cache-dir`` or ``cache-dir`` in [tool.nc-audit] override it. An entry is reused only when proven
(nc_audit.io.guards.cache_proof: an HMAC with this user's key over its key fields and bytes); see
:func:`cached_dump` for what happens to the others. Listing and clearing: nc_audit.measurement.cache_files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nc_audit.core.errors import InputError
from nc_audit.core.progress import Tracker
from nc_audit.io.guards.atomic import new_folder
from nc_audit.measurement.cache_files import (  # re-exported: the cache's one import point
    DUMP_NAME,
    PARTIAL_NAME,
    CacheEntry,
    cache_entries,
    clear_cache,
    default_cache_dir,
)
from nc_audit.models.spec import NO_MODEL, ModelSpec


def cache_path(
    cache_dir: Path, checkpoint_sha256: str, dataset_spec: str, splits: list[str], model: ModelSpec = NO_MODEL
) -> Path:
    """The dump file for one (checkpoint, dataset, splits, model factory and arguments, head) combination
    (the device is not part of it: the features are the same wherever they were computed)."""
    model_spec, head, model_args = model.factory, model.head, model.arg_texts
    parts = [checkpoint_sha256, dataset_spec, ",".join(sorted(splits)), model_spec or "", head or ""]
    if model_args:  # only then, so the keys of earlier caches stay valid
        parts.append("\x1f".join(model_args))
    key = "\n".join(parts)
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return cache_dir / f"{checkpoint_sha256[:12]}-{digest}.h5"


def entry_problem(path: Path, splits: list[str]) -> str | None:
    """Why a cache entry cannot be used as it is (None when it can): not a regular file (a symlink is
    never followed: the cache folder may be shared), not a readable dump, or a split missing."""
    from nc_audit.io.dumps.reader import check_head, resolve_split

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
    from nc_audit.io.guards.cache_proof import proof_path

    try:
        path.unlink(missing_ok=True)
        proof_path(path).unlink(missing_ok=True)
    except OSError as error:
        raise InputError(
            f"{path}: a damaged feature cache entry ({problem}) that cannot be removed "
            f"({error.strerror or error}); delete it or pass another --cache-dir"
        ) from None


def entry_fields(
    path: Path, sha: str, spec: str, splits: list[str], model: ModelSpec = NO_MODEL
) -> dict[str, str]:
    """What an entry claims to hold, as its proof records it (see nc_audit.io.guards.cache_proof)."""
    return {
        "entry": path.name,
        "checkpoint_sha256": sha,
        "dataset": spec,
        "splits": ",".join(sorted(splits)),
        "model": model.factory or "",
        "head": model.head or "",
        "model_args": "\x1f".join(model.arg_texts),
    }


def _claims_match(path: Path, fields: dict[str, str]) -> bool:
    """The dump's own attributes name the checkpoint and the data of its proof."""
    from nc_audit.io.dumps.reader import read_attrs

    attrs = read_attrs(path)
    return (
        attrs.get("checkpoint_sha256") == fields["checkpoint_sha256"]
        and attrs.get("dataset") == fields["dataset"]
    )


def _same_folder(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _usable(
    path: Path, splits: list[str], key: bytes | None, fields: dict[str, str]
) -> tuple[str | None, bool]:
    """(why the entry cannot be reused, or None; whether nc-audit may replace it: its name is signed by
    this user's key, so nc-audit wrote it and it is damaged, not planted)."""
    from nc_audit.io.guards.cache_proof import verify

    problem = entry_problem(path, splits)
    verdict = verify(path, key, fields)
    if problem is not None:
        return problem, verdict.signed
    if not verdict.proven:
        return verdict.why, verdict.signed
    if not _claims_match(path, fields):
        return "its attributes name another checkpoint or dataset than its proof", True
    return None, True


def _lookup(
    folder: Path, own: Path, splits: list[str], key: bytes | None, fields_of: Callable[[Path], tuple[Path, dict[str, str]]],
    notes: list[str],
) -> tuple[Path, dict[str, str], bool]:  # fmt: skip
    """(entry path, its fields, hit). An unproven entry in a folder other than the user's own cache is
    ignored, left as it is, and the user's own cache is used instead; in the user's own cache (or when
    nc-audit's own proof names it) it is removed, to be rebuilt in place."""
    path, fields = fields_of(folder)
    if not os.path.lexists(path):
        return path, fields, False
    problem, ours = _usable(path, splits, key, fields)
    if problem is None:
        try:
            os.utime(path, follow_symlinks=False)  # "last used": clear --older-than keeps what is in use
        except OSError:
            pass  # a read-only cache still serves hits
        return path, fields, True
    if ours or _same_folder(folder, own):
        _remove_entry(path, problem)
        notes.append(f"The feature cache entry {path} was not reusable ({problem}); it was rebuilt.")
        return path, fields, False
    notes.append(
        f"The feature cache entry {path} was ignored ({problem}) and left as it is; the features were "
        f"taken from your own cache {own}."
    )
    return _lookup(own, own, splits, key, fields_of, notes)


def cached_dump(
    checkpoint_path: Path | str,
    data: str,
    *,
    model: ModelSpec = NO_MODEL,
    cache_dir: Path | None = None,
    tracker: Tracker | None = None,
    splits: list[str] | None = None,
    on_rebuild: Callable[[str], None] | None = None,
) -> tuple[Path, bool]:
    """The dump of ``splits`` (default: every split) of ``data`` through the checkpoint's model: from the
    cache, or extracted into it now through ``model`` (factory, arguments, head, device). Returns (path,
    hit) — hit is True when no forward pass was needed.

    An entry is reused only when proven (nc_audit.io.guards.cache_proof: signed by this user's key, for this
    checkpoint, data and settings, its bytes unchanged). A damaged entry of nc-audit's own, or any
    unproven entry of the user's own cache (:func:`default_cache_dir`), is removed and rebuilt; an
    unproven entry elsewhere (a project's cache-dir) is never touched: the user's own cache is used.
    ``on_rebuild`` receives a note saying so."""
    from nc_audit.io.checkpoints.container import check_checkpoint_file
    from nc_audit.io.checkpoints.load import source_sha256
    from nc_audit.io.data.datasets import dataset_splits
    from nc_audit.models.extract import extract
    from nc_audit.models.stream_sources import data_identity

    checkpoint_path = Path(checkpoint_path)
    check_checkpoint_file(checkpoint_path)  # a regular file (or a folder), not a zip bomb: before hashing
    splits = splits or dataset_splits(data)
    spec = data_identity(data, splits, checkpoint_path)
    sha = source_sha256(checkpoint_path)

    def fields_of(where: Path) -> tuple[Path, dict[str, str]]:
        path = cache_path(where, sha, spec, splits, model)
        return path, entry_fields(path, sha, spec, splits, model)

    entry = proven_entry(cache_dir, splits, fields_of, on_rebuild)
    if entry.hit:
        return entry.path, True
    # a failed fill (disk full) leaves no empty cache folder behind
    with new_folder(entry.path.parent, "the feature cache; pass --cache-dir"):
        extract(checkpoint_path, data, entry.path, splits=splits, model=model, tracker=tracker)
    entry.sign()
    return entry.path, False


@dataclass(frozen=True)
class ProvenEntry:
    """Where a cache entry is (or is to be written) and whether it was reused; :meth:`sign` writes the
    proof of a freshly written entry (nothing without a usable key)."""

    path: Path
    fields: dict[str, str]
    key: bytes | None
    hit: bool

    def sign(self) -> None:
        from nc_audit.io.guards.cache_proof import proof_path, write_proof

        if self.key is None:
            return
        try:
            write_proof(self.path, self.key, self.fields)
        except OSError as error:
            raise InputError(
                f"{proof_path(self.path)}: cannot write the cache entry's proof ({error.strerror or error})"
            ) from None


def proven_entry(
    cache_dir: Path | None,
    splits: list[str],
    fields_of: Callable[[Path], tuple[Path, dict[str, str]]],
    on_note: Callable[[str], None] | None = None,
) -> ProvenEntry:
    """The entry ``fields_of(folder)`` names in ``cache_dir`` (default: the user's own cache), reused only
    when proven (see :func:`cached_dump`), else where to write it; the notes go to ``on_note``. Every
    cache (classification dumps, next-token dumps) looks up its entries through this one function."""
    from nc_audit.io.guards.cache_proof import load_key

    own = default_cache_dir()
    folder = Path(cache_dir) if cache_dir is not None else own
    notes: list[str] = []
    try:
        key: bytes | None = load_key(folder)
    except InputError as error:
        key = None
        notes.append(f"{error}: the feature cache is not reused")
    path, fields, hit = _lookup(folder, own, splits, key, fields_of, notes)
    for note in notes:
        if on_note is not None:
            on_note(note)
    return ProvenEntry(path, fields, key, hit)


_ENTRY_AT_START = re.compile(r"^(.*?[0-9a-f]{12}-[0-9a-f]{20}\.h5)(?=[ :]|$)")


@contextlib.contextmanager
def errors_name_the_data(data: str | None) -> Iterator[None]:
    """Inside, an InputError about a cache entry (its message starts with the entry's path) is said of
    the user's ``data`` instead: the cause is the data (one class, NaN rows), the entry is only where
    its features were extracted to (named at the end)."""
    try:
        yield
    except InputError as error:
        match = _ENTRY_AT_START.match(str(error)) if data is not None else None
        if match is None:
            raise
        rest = str(error)[match.end() :]
        entry = Path(match.group(1)).name
        raise InputError(f"{data}{rest} (its features, extracted into the cache entry {entry})") from None


__all__ = [
    "DUMP_NAME",
    "PARTIAL_NAME",
    "CacheEntry",
    "cache_entries",
    "cache_path",
    "cached_dump",
    "clear_cache",
    "default_cache_dir",
    "entry_fields",
    "entry_problem",
    "errors_name_the_data",
]
