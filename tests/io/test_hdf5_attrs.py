"""Attributes and inflation of untrusted HDF5 files bounded before reading (nc_audit/io/hdf5/attrs.py, the
head name and root attributes of dumps, the ``--data`` loader's byte cap)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from nc_audit.core.errors import InputError
from nc_audit.io.data import user_files as data_files
from nc_audit.io.dumps.reader import check_head, read_attrs
from nc_audit.io.hdf5 import attrs as hdf5_attrs

W = np.eye(2, 3)


def _dump(path: Path, **attrs: object) -> Path:
    with h5py.File(path, "w", libver="latest") as handle:  # dense attributes: no 64 KB header limit
        handle["features"] = np.zeros((4, 3))
        handle["labels"] = np.arange(4) % 2
        handle["head/weight"] = W
        for key, value in attrs.items():
            target = handle["head"] if key == "name" else handle
            target.attrs[key] = value
    return path


def test_a_plain_head_name_and_root_attributes_are_read(tmp_path: Path) -> None:
    dump = _dump(tmp_path / "d.h5", name="classifier", dataset="digits", step=np.int64(3))
    assert check_head(dump)[2] == "classifier"
    assert read_attrs(dump) == {"dataset": "digits", "step": "3"}


def test_a_head_name_in_a_file_mostly_outside_its_datasets_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hdf5_attrs, "MAX_HEAP_BYTES", 2**16)
    dump = _dump(tmp_path / "d.h5", name="h" * 200_000)  # variable length: its size unknown before reading
    with pytest.raises(
        InputError, match=r"d.h5: the head's name attribute is variable-length in a file holding"
    ):
        check_head(dump)


def test_a_long_or_large_head_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"holds 300 characters \(at most 256\)"):
        check_head(_dump(tmp_path / "long.h5", name="h" * 300))
    with pytest.raises(InputError, match=r"the head's name attribute holds 100000 bytes \(more than 65536\)"):
        check_head(_dump(tmp_path / "fixed.h5", name=np.bytes_(b"h" * 100_000)))
    array = np.array(["a", "b"], dtype=h5py.string_dtype())
    with pytest.raises(InputError, match=r"is an array of 2 variable-length values"):
        check_head(_dump(tmp_path / "array.h5", name=array))


def test_unbounded_root_attributes_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hdf5_attrs, "MAX_HEAP_BYTES", 2**16)
    dump = _dump(
        tmp_path / "d.h5",
        dataset="d" * 200_000,
        big=np.zeros(20_000),
        notes=np.array(["a", "b"], dtype=h5py.string_dtype()),
    )
    assert read_attrs(dump) == {}


def _data(path: Path, rows: int, compression: str | None) -> Path:
    with h5py.File(path, "w") as handle:
        handle.create_dataset(
            "inputs", data=np.zeros((rows, 64), np.float32), chunks=(1024, 64), compression=compression
        )
        handle["labels"] = (np.arange(rows) % 2).astype(np.int8)
    return path


def test_a_data_file_inflating_beyond_the_byte_cap_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data_files, "MAX_INFLATED_BYTES", 2**20)  # 1 MiB more than the file at most
    plain = _data(tmp_path / "plain.h5", 8192, None)  # 2 MiB stored as 2 MiB: fine
    arrays, _ = data_files._file_keys(plain)
    assert arrays["inputs"].shape == (8192, 64)
    bomb = _data(
        tmp_path / "bomb.h5", 8192, "gzip"
    )  # 2 MiB of zeros in a few KB: under 1000x, over 1 MiB more
    with pytest.raises(
        InputError, match=r"bomb.h5: its arrays declare .* more than it stores; refused before"
    ):
        data_files._file_keys(bomb)


def test_variable_length_datasets_are_refused_before_reading(tmp_path: Path) -> None:
    """Many variable-length elements may share one heap object: their declared size bounds nothing."""
    path = _data(tmp_path / "strings.h5", 2048, None)
    with h5py.File(path, "a") as handle:
        handle["names"] = np.array(["a", "b"], dtype=h5py.string_dtype())
    with pytest.raises(InputError, match=r"strings.h5: /names holds variable-length values"):
        data_files._file_keys(path)


def test_object_floods_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _data(tmp_path / "many.h5", 2048, None)
    with h5py.File(path, "a") as handle:
        for i in range(12):
            handle[f"extra/x{i}"] = np.zeros(2)
    monkeypatch.setattr(hdf5_attrs, "MAX_OBJECTS", 5)
    with h5py.File(path) as handle:
        assert hdf5_attrs.heap_bound(handle) == path.stat().st_size  # not all visited: all heap
    monkeypatch.setattr(data_files, "MAX_DATASETS", 8)
    with pytest.raises(InputError, match=r"many.h5: holds more than 8 datasets"):
        data_files._file_keys(path)
