"""Which ``--data`` specs name a user file, by suffix, without importing torch: the command line plans
its outputs against that file before loading PyTorch, and :mod:`nc_audit.io.data.datasets` parses the same
way."""

from __future__ import annotations

#: Suffixes of user data files (io/data/user_files.py reads them).
USER_SUFFIXES: tuple[str, ...] = (".npz", ".h5", ".hdf5")


def is_user_file(path_part: str) -> bool:
    """Whether a spec names a user file (by its suffix)."""
    return path_part.lower().endswith(USER_SUFFIXES)


def file_spec(spec: str) -> tuple[str, str] | None:
    """(path, option text) when ``spec`` names a user file (``data.npz`` or ``data.h5:sha256=...``), else
    None (a built-in name, or not a data file)."""
    spec = spec.strip()
    if is_user_file(spec):
        return spec, ""
    head, _, option_text = spec.rpartition(":")
    if is_user_file(head):
        return head, option_text
    return None
