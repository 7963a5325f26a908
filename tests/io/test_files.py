"""Bounded reads of input files (nc_audit/io/guards/files.py): regular files only, sizes, JSON depth and digits."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from nc_audit.core.errors import InputError
from nc_audit.io.guards.files import JSONSyntaxError, load_json, read_capped, regular_file


def test_a_fifo_is_refused_at_once_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "baseline.json"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(InputError, match=r"baseline\.json: not a regular file \(a FIFO"):
        load_json(fifo, "baseline")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("path", ["/proc/self/mem", "/proc/self/environ", "/dev/zero"])
def test_pseudo_files_and_devices_are_refused(path: str) -> None:
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist here")
    with pytest.raises(InputError, match=f"{path}: not a regular file"):
        regular_file(path, "baseline")


def test_missing_folders_and_oversized_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no such baseline"):
        regular_file(tmp_path / "missing.json", "baseline")
    with pytest.raises(InputError, match=r"not a regular file \(a folder"):
        regular_file(tmp_path, "baseline")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2048)
    with pytest.raises(InputError, match=r"more than the 1.0 KiB nc-audit reads"):
        read_capped(big, 1024, "baseline")


def test_json_nested_too_deep_or_with_huge_integers_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(InputError, match=r"deep.json: JSON nested 100001 levels deep"):
        load_json(deep)
    digits = tmp_path / "digits.json"
    digits.write_text('{"nc1": 1' + "0" * 5000 + "}")
    with pytest.raises(InputError, match=r"digits.json: holds a 5001-digit integer"):
        load_json(digits)
    strings = tmp_path / "strings.json"
    strings.write_text('{"text": "[[[[ {{{{ \\" ]]"}')  # brackets inside strings do not nest
    assert load_json(strings) == {"text": '[[[[ {{{{ " ]]'}


def test_text_that_is_not_json_says_where() -> None:
    with pytest.raises(JSONSyntaxError, match=r"x.json: not valid JSON .* at line 1, column 2"):
        from nc_audit.io.guards.files import parse_json

        parse_json(b"{x", "x.json")
