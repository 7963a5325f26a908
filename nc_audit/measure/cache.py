"""The feature cache: dumps extracted on the fly, keyed by checkpoint sha256 + dataset + splits.

Default location: $NC_AUDIT_CACHE, else $XDG_CACHE_HOME/nc-audit, else ~/.cache/nc-audit;
``--cache-dir`` or ``cache-dir`` in [tool.nc-audit] override it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from nc_audit.core.errors import InputError
from nc_audit.core.progress import Tracker


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
) -> tuple[Path, bool]:
    """The dump of ``splits`` (default: every split) of ``data`` through the checkpoint's model: from the
    cache, or extracted into it now. Returns (path, hit) — hit is True when no forward pass was needed."""
    from nc_audit.io.checkpoints import source_sha256
    from nc_audit.io.datasets import dataset_splits, load_dataset
    from nc_audit.models.extract import extract
    from nc_audit.models.factories import parse_model_args

    checkpoint_path = Path(checkpoint_path)
    if not checkpoint_path.exists():
        raise InputError(f"{checkpoint_path}: no such checkpoint file")
    splits = splits or dataset_splits(data)
    spec = load_dataset(data, splits[0]).spec
    folder = ensure_cache_dir(Path(cache_dir) if cache_dir is not None else default_cache_dir())
    sha = source_sha256(checkpoint_path)
    path = cache_path(folder, sha, spec, splits, model_spec, head, tuple(model_args))
    if path.is_file():
        return path, True
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
