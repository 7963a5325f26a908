"""A checkpoint's container checked before torch.load (nc_audit/io/checkpoints/container.py)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
import torch

from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints.container import check_checkpoint_file
from nc_audit.io.checkpoints.load import load_checkpoint


def test_a_deflated_record_declaring_far_more_than_the_file_is_a_zip_bomb(tmp_path: Path) -> None:
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        with archive.open("archive/data/0", "w", force_zip64=True) as record:
            for _ in range(96):
                record.write(bytes(1 << 20))  # 96 MiB of zeros: about 100 KB deflated
    with pytest.raises(
        InputError,
        match=r"bomb\.pt: its records declare 96\.0 MiB uncompressed in a .* refused as a zip bomb",
    ):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"", "the file is empty"),
        (b"PK\x03\x04" + bytes(100), "a truncated or damaged zip archive"),
        (bytes(range(1, 256)) * 16, "neither a zip archive"),
    ],
    ids=["empty", "truncated-zip", "random"],
)
def test_broken_files_are_named_precisely_never_code_execution(
    tmp_path: Path, content: bytes, said: str
) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=f"model.pt: not a readable PyTorch checkpoint \\({said}") as raised:
        load_checkpoint(path)
    assert "could execute code" not in str(raised.value)


def test_a_real_checkpoint_cut_in_half_is_called_truncated(tmp_path: Path) -> None:
    path = tmp_path / "half.pt"
    torch.save({"w": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match=r"truncated or damaged zip archive"):
        check_checkpoint_file(path)


def test_a_fifo_checkpoint_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "epoch_1.pt"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"epoch_1.pt: not a regular file"):
        load_checkpoint(fifo)
