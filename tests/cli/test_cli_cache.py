"""`nc-audit cache list|clear [--older-than DAYS]`: sizes, ages, and removing only nc-audit's own files —
never another file, a folder, or whatever a symbolic link points to.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import mlp_checkpoint
from runs import assert_bad_input
from typer.testing import CliRunner, Result

from nc_audit.cli import app
from nc_audit.measurement.cache import cache_entries, cached_dump, clear_cache

pytestmark = pytest.mark.usefixtures("isolated_cli")
DAY = 86400.0
DUMP_A, DUMP_B = "0123456789ab-0123456789abcdef0123.h5", "ba9876543210-fedcba9876543210fedc.h5"
PARTIAL = f".{DUMP_A}.k2j3l4.tmp"


def cache(*args: str) -> Result:
    return CliRunner().invoke(app, ["cache", *args])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A cache folder holding two dumps (1 kB, 10 days old; 2 kB, fresh), a partial extraction (3 days old),
    and things that are not nc-audit's: a user's file, a subfolder, and links to files outside."""
    folder = tmp_path / "cache"
    folder.mkdir()
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "model.h5").write_bytes(b"x" * 5000)
    now = time.time()
    for name, size, age in ((DUMP_A, 1000, 10), (DUMP_B, 2000, 0), (PARTIAL, 500, 3)):
        (folder / name).write_bytes(b"\0" * size)
        os.utime(folder / name, (now - age * DAY, now - age * DAY))
    (folder / "notes.h5").write_bytes(b"mine")
    (folder / "0123456789ab-0123456789abcdef0123").mkdir()  # a folder with a dump-like name
    (folder / "aaaaaaaaaaaa-aaaaaaaaaaaaaaaaaaaa.h5").symlink_to(outside / "model.h5")
    (folder / "outside").symlink_to(outside)
    return folder


def test_list_shows_only_nc_audits_files_with_sizes_oldest_first(folder: Path) -> None:
    assert [entry.path.name for entry in cache_entries(folder)] == [DUMP_A, PARTIAL, DUMP_B]

    result = cache("list", "--cache-dir", str(folder))

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"cache {folder}"
    assert (
        lines[1].split()[:4] == ["1.0", "kB", "10.0", "d"] and DUMP_A in lines[1] and "unreadable" in lines[1]
    )
    assert "partial (interrupted extraction)" in lines[2]
    assert lines[-1] == "3 file(s), 3.5 kB"
    assert "notes.h5" not in result.stdout and "aaaaaaaa" not in result.stdout


def test_clear_older_than_removes_only_what_was_unused_that_long(folder: Path) -> None:
    result = cache("clear", "--older-than", "2", "--cache-dir", str(folder))

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"removed 2 file(s), 1.5 kB, from {folder}; 1 kept"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [
            DUMP_B,
            "notes.h5",
            "0123456789ab-0123456789abcdef0123",
            "aaaaaaaaaaaa-aaaaaaaaaaaaaaaaaaaa.h5",
            "outside",
        ]
    )


def test_clear_never_touches_other_files_folders_or_link_targets(folder: Path, tmp_path: Path) -> None:
    result = cache("clear", "--cache-dir", str(folder))

    assert result.exit_code == 0, result.output
    assert "removed 3 file(s), 3.5 kB" in result.stdout
    assert (folder / "notes.h5").read_bytes() == b"mine"
    assert (folder / "0123456789ab-0123456789abcdef0123").is_dir()
    assert (folder / "aaaaaaaaaaaa-aaaaaaaaaaaaaaaaaaaa.h5").is_symlink()
    assert (tmp_path / "precious" / "model.h5").stat().st_size == 5000
    assert cache_entries(folder) == []


def test_a_file_replaced_after_listing_is_left_alone(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each file goes whole or not at all, and only the file that was listed: a dump rewritten in between
    (a concurrent extraction renaming a new one into place) survives."""
    import nc_audit.measurement.cache_files as module

    listed = module._entries

    def entries_then_replace(cache_dir: Path, fd: int) -> list:
        found = listed(cache_dir, fd)
        (folder / "new.tmp").write_bytes(b"fresh")
        os.replace(folder / "new.tmp", folder / DUMP_B)
        return found

    monkeypatch.setattr(module, "_entries", entries_then_replace)
    removed = clear_cache(folder)
    assert sorted(entry.path.name for entry in removed) == sorted([DUMP_A, PARTIAL])
    assert (folder / DUMP_B).read_bytes() == b"fresh"


def test_a_cache_hit_counts_as_use(tmp_path: Path) -> None:
    checkpoint = mlp_checkpoint(tmp_path / "m.pt")
    folder = tmp_path / "c"
    path, hit = cached_dump(checkpoint, "gaussian:classes=3,dim=64,samples=60", cache_dir=folder)
    assert not hit
    os.utime(path, (time.time() - 30 * DAY, time.time() - 30 * DAY))
    assert cached_dump(checkpoint, "gaussian:classes=3,dim=64,samples=60", cache_dir=folder) == (path, True)
    assert clear_cache(folder, older_than_days=1) == []  # just used
    (entry,) = cache_entries(folder)
    assert "gaussian" in cache("list", "--cache-dir", str(folder)).stdout and entry.size > 0


def test_a_missing_cache_lists_empty_and_bad_days_are_bad_input(tmp_path: Path) -> None:
    result = cache("list", "--cache-dir", str(tmp_path / "none"))
    assert result.exit_code == 0 and result.stdout.splitlines()[-1] == "0 file(s), 0 B"
    assert cache("clear", "--cache-dir", str(tmp_path / "none")).exit_code == 0
    assert cache("clear", "--older-than", "-1", "--cache-dir", str(tmp_path)).exit_code == 2


def test_the_default_folder_is_the_one_measure_uses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NC_AUDIT_CACHE", str(tmp_path / "env-cache"))
    assert cache("list").stdout.splitlines()[0] == f"cache {tmp_path / 'env-cache'}"


def test_an_unreadable_cache_folder_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NC_AUDIT_CACHE", str(tmp_path / "env-cache"))
    (tmp_path / "env-cache").mkdir()
    (tmp_path / "env-cache" / "x").write_text("")
    os.chmod(tmp_path / "env-cache", 0o000)
    try:
        if os.access(tmp_path / "env-cache", os.R_OK):
            pytest.skip("running as a user who reads any folder")
        assert_bad_input(cache("list"), "env-cache", "cannot read the feature cache")
    finally:
        os.chmod(tmp_path / "env-cache", 0o755)
