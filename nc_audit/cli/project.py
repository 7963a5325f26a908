"""Shared options whose default may come from ``[tool.nc-audit]`` (nc_audit.gating.config): a flag given
on the command line wins, else the project's value, else the built-in default. Every command that has
``--device``, ``--format`` or ``--cache-dir`` resolves it here or through nc_audit.cli.gating (measure,
track), so the README's "defaults for every run" holds for each of them."""

from __future__ import annotations

from pathlib import Path

from nc_audit.cli.common import Device, Format


def project_device(flag: Device | None) -> str:
    """``--device`` as given, else ``device`` of [tool.nc-audit], else auto."""
    from nc_audit.gating.config import load_defaults

    if flag is not None:
        return flag.value
    return str(load_defaults()["device"])


def project_format(flag: str | None) -> str:
    """``--format`` as given (a registry name, checked by the option), else ``format`` of [tool.nc-audit],
    else table."""
    from nc_audit.gating.config import load_defaults

    if flag is not None:
        return flag
    return Format(load_defaults()["format"])


def project_cache_dir(flag: Path | None) -> Path | None:
    """``--cache-dir`` as given, else ``cache-dir`` of [tool.nc-audit], else None (the user's own cache)."""
    from nc_audit.gating.config import load_defaults

    if flag is not None:
        return flag
    folder = load_defaults()["cache_dir"]
    return Path(folder) if folder is not None else None
