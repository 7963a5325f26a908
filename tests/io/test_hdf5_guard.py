"""Untrusted HDF5 (nc_audit/io/hdf5/guard.py): data from other files refused unless allowed, and then read
from the right file; links walked without following; sparse, giant-chunk and tiny-chunk datasets refused."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from nc_audit.core.errors import InputError
from nc_audit.io.dumps.chunks import MAX_CHUNKS_PER_READ, rows_per_read
from nc_audit.io.dumps.reader import feature_scale, iter_chunks, resolve_split
from nc_audit.io.hdf5.guard import external_data_allowed

ROWS = np.arange(40 * 3, dtype=np.float64).reshape(40, 3)


def _dump(path: Path, features: object = None, **datasets: np.ndarray) -> Path:
    with h5py.File(path, "a") as handle:
        if features is not None:
            handle["features"] = features
        handle["labels"] = np.arange(40) % 2
        for name, data in datasets.items():
            handle[name] = data
    return path


def _all_rows(path: Path) -> np.ndarray:
    info = resolve_split(path, None)
    return np.concatenate([f.numpy() for f, _ in iter_chunks(info, chunk_rows=7)])


def test_raw_external_storage_is_refused_naming_the_dataset_and_the_file(tmp_path: Path) -> None:
    raw = tmp_path / "rows.bin"
    raw.write_bytes(ROWS.tobytes())
    dump = tmp_path / "d.h5"
    with h5py.File(dump, "w") as handle:
        handle.create_dataset(
            "features", shape=ROWS.shape, dtype="<f8", external=[(str(raw), 0, ROWS.nbytes)]
        )
    _dump(dump)
    with pytest.raises(
        InputError, match=r"d\.h5: /features keeps its bytes in the external file\(s\) .*rows\.bin"
    ):
        resolve_split(dump, None)
    with external_data_allowed():
        np.testing.assert_array_equal(_all_rows(dump), ROWS)


def test_external_storage_on_a_pseudo_file_is_refused_even_when_allowed(tmp_path: Path) -> None:
    dump = tmp_path / "d.h5"
    with h5py.File(dump, "w") as handle:
        handle.create_dataset("labels", shape=(8,), dtype=">i8", external=[("/proc/self/environ", 0, 64)])
        handle["features"] = ROWS[:8]
    with (
        external_data_allowed(),
        pytest.raises(
            InputError, match=r"/labels keeps its bytes in /proc/self/environ, which is not a regular file"
        ),
    ):
        resolve_split(dump, None)


def test_an_external_link_is_refused_then_read_from_its_own_file(tmp_path: Path) -> None:
    target = tmp_path / "target.h5"
    with h5py.File(target, "w") as handle:  # the rows lie after other data in the target...
        handle["aaa_padding"] = np.zeros(5000)
        handle.create_dataset("x", data=ROWS, chunks=(8, 3))
    dump = tmp_path / "linking.h5"
    with h5py.File(dump, "w") as handle:  # ...and the linking file holds other numbers at those offsets
        handle["aaa_padding"] = np.full(20000, 7.0)
        handle["features"] = h5py.ExternalLink(target.name, "/x")
    _dump(dump)
    with pytest.raises(
        InputError, match=r"linking\.h5: /features is an external link to target\.h5:/x; refused"
    ):
        resolve_split(dump, None)
    with external_data_allowed():
        np.testing.assert_array_equal(_all_rows(dump), ROWS)


def test_a_virtual_dataset_needs_the_opt_in_and_every_source(tmp_path: Path) -> None:
    dump = tmp_path / "vds.h5"
    layout = h5py.VirtualLayout(shape=ROWS.shape, dtype=ROWS.dtype)
    layout[:] = h5py.VirtualSource(str(tmp_path / "gone.h5"), "x", shape=ROWS.shape)
    with h5py.File(dump, "w") as handle:
        handle.create_virtual_dataset("features", layout, fillvalue=0)
    _dump(dump)
    with pytest.raises(InputError, match=r"virtual dataset reading from .*gone.h5; refused"):
        resolve_split(dump, None)
    with external_data_allowed(), pytest.raises(InputError, match=r"source .*gone.h5 is missing"):
        resolve_split(dump, None)


def test_soft_link_loops_end_in_one_error(tmp_path: Path) -> None:
    dump = tmp_path / "loop.h5"
    with h5py.File(dump, "w") as handle:
        handle["features"] = h5py.SoftLink("/a")
        handle["a"] = h5py.SoftLink("/features")
    _dump(dump)
    with pytest.raises(InputError, match=r"/features leads into a loop of soft links"):
        resolve_split(dump, None)


def test_sparse_datasets_are_refused_before_any_row_is_read(tmp_path: Path) -> None:
    dump = tmp_path / "sparse.h5"
    with h5py.File(dump, "w") as handle:
        handle.create_dataset("features", shape=(10**9, 64), dtype="f4", chunks=(1, 64))
        handle.create_dataset("labels", shape=(10**9,), dtype="i8", chunks=(4096,))
    with pytest.raises(InputError, match=r"stores only 0 of its 1000000000 chunks"):
        resolve_split(dump, None)


def test_tiny_chunks_are_refused_with_a_repack_hint_and_reads_stay_bounded(tmp_path: Path) -> None:
    dump = tmp_path / "tiny.h5"
    with h5py.File(dump, "w") as handle:
        handle.create_dataset("features", data=np.ones((20000, 4), np.float32), chunks=(1, 1))
        handle.create_dataset("labels", data=np.zeros(20000, np.int64), chunks=(1,))
    with pytest.raises(InputError, match=r"80000 chunks of 4 bytes each, too finely chunked.*h5repack"):
        resolve_split(dump, None)
    with h5py.File(dump) as handle:
        assert rows_per_read(handle["features"], handle["labels"]) == MAX_CHUNKS_PER_READ // 4


@pytest.mark.parametrize("scale", [1e-200, 1e154])
def test_extreme_float64_features_are_read_at_a_power_of_two_scale(tmp_path: Path, scale: float) -> None:
    dump = _dump(tmp_path / "scaled.h5", ROWS * scale + scale)
    info = resolve_split(dump, None)
    factor = feature_scale(info)
    assert factor != 1.0 and np.log2(factor).is_integer()
    assert 0.5 <= np.abs(ROWS * scale + scale).max() * factor <= 1.0
    assert feature_scale(resolve_split(_dump(tmp_path / "plain.h5", ROWS), None)) == 1.0
