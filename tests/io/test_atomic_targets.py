"""What a write does to its target (nc_audit/io/guards/atomic.py): through symlinks, straight into FIFOs and
devices, a full disk said as such, created folders removed when the block fails."""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

import pytest

from nc_audit.core.errors import InputError
from nc_audit.io.guards.atomic import atomic_path, atomic_write_text, new_folder, write_error


def test_a_symlinked_output_stays_a_link_and_its_target_gets_the_bytes(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    target = tmp_path / "reports" / "real.json"
    target.write_text("stale")
    link = tmp_path / "latest.json"
    link.symlink_to(Path("reports") / "real.json")
    atomic_write_text(link, "fresh")
    assert link.is_symlink() and target.read_text() == "fresh"
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["real.json"]  # no temporary left


def test_a_fifo_is_written_into_never_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    received = bytearray()

    def drain() -> None:
        with open(fifo, "rb") as handle:
            received.extend(handle.read())

    reader = threading.Thread(target=drain)
    reader.start()
    atomic_write_text(fifo, "report\n")
    reader.join(timeout=10)
    assert bytes(received) == b"report\n" and stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_character_device_is_written_into_never_replaced(tmp_path: Path) -> None:
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a private /dev/null
    except OSError:
        device = Path("/dev/null")
        if not os.access(device, os.W_OK):
            pytest.skip("no writable character device")
    atomic_write_text(device, "discarded")
    assert stat.S_ISCHR(device.lstat().st_mode)
    with pytest.raises(InputError, match="a character device, not a file nc-audit can replace"):
        with atomic_path(device):
            pass


@pytest.mark.parametrize(
    ("number", "said"),
    [(errno.ENOSPC, "no space left on the device holding"), (errno.EFBIG, "file too large")],
)
def test_a_full_disk_is_said_as_such_and_the_old_file_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, number: int, said: str
) -> None:
    target = tmp_path / "report.json"
    target.write_text("previous")

    def full(self: Path, data: bytes) -> int:
        raise OSError(number, os.strerror(number))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(InputError, match=f"report.json: {said}.*the previous file is intact"):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "previous" and [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_an_errno_quoted_by_hdf5_is_understood() -> None:
    error = RuntimeError(
        "Can't decrement id ref count (file write failed: ..., errno = 28, error message = ...)"
    )
    assert "no space left" in str(write_error("out.h5", error))


def test_new_folder_removes_what_it_created_when_the_block_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), new_folder(tmp_path / "a" / "b"):
        raise RuntimeError("failed")
    assert list(tmp_path.iterdir()) == []
    with new_folder(tmp_path / "kept") as folder:
        (folder / "file").write_text("x")
    assert (tmp_path / "kept" / "file").exists()
