"""Every HDF5 indirection followed before a byte is read (nc_audit/io/hdf5/graph.py, hdf5_mapping.py,
hdf5_links.py): same-file virtual sources, links and raw external storage checked at their final storage,
cycles refused, unmapped regions and unwritten rows refused, virtual datasets sized by their sources."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from nc_audit.core.errors import InputError
from nc_audit.io.dumps.reader import iter_chunks, resolve_split
from nc_audit.io.hdf5 import mapping as hdf5_mapping
from nc_audit.io.hdf5.guard import external_data_allowed

ROWS = np.arange(40 * 3, dtype=np.float64).reshape(40, 3)


def _secret(tmp_path: Path) -> Path:
    """A host file outside the dump: its bytes must never be read without the opt-in."""
    path = tmp_path / "secret.bin"
    path.write_bytes(ROWS.tobytes())
    return path


def _raw(handle: h5py.File, name: str, target: Path) -> None:
    handle.create_dataset(name, shape=ROWS.shape, dtype="<f8", external=[(str(target), 0, ROWS.nbytes)])


def _vds(
    handle: h5py.File, name: str, source: str, file: str = ".", shape: tuple[int, int] = ROWS.shape
) -> None:
    layout = h5py.VirtualLayout(shape=shape, dtype="<f8")
    layout[...] = h5py.VirtualSource(file, source, shape=shape, dtype="<f8")
    handle.create_virtual_dataset(name, layout, fillvalue=-1.0)


def _labels(handle: h5py.File, rows: int = 40) -> None:
    handle["labels"] = np.arange(rows) % 2


def _all_rows(path: Path) -> np.ndarray:
    return np.concatenate([f.numpy() for f, _ in iter_chunks(resolve_split(path, None), chunk_rows=7)])


@pytest.mark.parametrize("via", ["direct", "soft link", "vds of vds", "group soft link"])
def test_a_same_file_virtual_source_on_external_storage_is_refused_without_the_opt_in(
    tmp_path: Path, via: str
) -> None:
    secret = _secret(tmp_path)
    dump = tmp_path / "vds.h5"
    with h5py.File(dump, "w") as handle:
        _raw(handle, "store/raw", secret)
        source = {
            "direct": "store/raw",
            "soft link": "alias",
            "vds of vds": "mid",
            "group soft link": "g/raw",
        }[via]
        handle["alias"] = h5py.SoftLink("/store/raw")
        handle["g"] = h5py.SoftLink("/store")
        _vds(handle, "mid", "store/raw")
        _vds(handle, "features", source)
        _labels(handle)
    with pytest.raises(InputError, match=rf"vds.h5: /features -> .*external file\(s\) {secret}; refused"):
        resolve_split(dump, None)
    with external_data_allowed():  # a trusted multi-file dump: read from the regular file it names
        np.testing.assert_array_equal(_all_rows(dump), ROWS)


def test_a_virtual_source_behind_an_external_link_is_refused_at_the_link(tmp_path: Path) -> None:
    secret = _secret(tmp_path)
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        _raw(handle, "raw", secret)
    dump = tmp_path / "vds.h5"
    with h5py.File(dump, "w") as handle:
        handle["lnk"] = h5py.ExternalLink("other.h5", "/raw")
        _vds(handle, "features", "lnk")
        _labels(handle)
    with pytest.raises(InputError, match=r"/features -> /lnk is an external link to other.h5:/raw; refused"):
        resolve_split(dump, None)


def test_external_storage_on_a_pseudo_file_is_refused_through_a_virtual_dataset_even_when_allowed(
    tmp_path: Path,
) -> None:
    dump = tmp_path / "vds.h5"
    with h5py.File(dump, "w") as handle:
        handle.create_dataset("raw", shape=(8, 3), dtype="<f8", external=[("/proc/self/environ", 0, 192)])
        _vds(handle, "features", "raw", shape=(8, 3))
        _labels(handle, 8)
    with (
        external_data_allowed(),
        pytest.raises(InputError, match=r"/proc/self/environ, which is not a regular"),
    ):
        resolve_split(dump, None)


@pytest.mark.parametrize("allowed", [False, True])
def test_cycles_are_refused_before_hdf5_reads_them(tmp_path: Path, allowed: bool) -> None:
    for name, build in [
        ("self", lambda h: _vds(h, "features", "features")),
        ("ab", lambda h: (_vds(h, "b", "features"), _vds(h, "features", "b"))),
    ]:
        dump = tmp_path / f"{name}.h5"
        with h5py.File(dump, "w") as handle:
            build(handle)
            _labels(handle)
        with external_data_allowed(allowed), pytest.raises(InputError, match=r"/features .*lead back to it"):
            resolve_split(dump, None)


def test_a_cycle_across_two_files_is_refused_with_the_opt_in(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "b.h5", "w") as handle:
        _vds(handle, "x", "features", file="a.h5")
    with h5py.File(tmp_path / "a.h5", "w") as handle:
        _vds(handle, "features", "x", file="b.h5")
        _labels(handle)
    with pytest.raises(InputError, match=r"reading from b.h5; refused"):
        resolve_split(tmp_path / "a.h5", None)
    with (
        external_data_allowed(),
        pytest.raises(InputError, match=r"lead back to it \(/features -> b.h5:x -> a.h5"),
    ):
        resolve_split(tmp_path / "a.h5", None)


def test_a_source_naming_the_dump_itself_is_a_same_file_source(tmp_path: Path) -> None:
    dump = tmp_path / "own.h5"
    with h5py.File(dump, "w") as handle:
        handle["real"] = ROWS
        _vds(handle, "features", "real", file="own.h5")
        _labels(handle)
    np.testing.assert_array_equal(_all_rows(dump), ROWS)  # no opt-in needed: nothing outside


def _halves(path: Path, regions: list[tuple[slice, slice]]) -> Path:
    with h5py.File(path, "w") as handle:
        handle["real"] = ROWS
        layout = h5py.VirtualLayout(shape=ROWS.shape, dtype="<f8")
        for rows, cols in regions:
            layout[rows, cols] = h5py.VirtualSource(".", "real", shape=ROWS.shape)[rows, cols]
        handle.create_virtual_dataset("features", layout, fillvalue=-1.0)
        _labels(handle)
    return path


def test_fully_mapped_virtual_datasets_are_read_from_their_sources(tmp_path: Path) -> None:
    rows = _halves(tmp_path / "rows.h5", [(slice(0, 20), slice(0, 3)), (slice(20, 40), slice(0, 3))])
    cols = _halves(tmp_path / "cols.h5", [(slice(0, 40), slice(0, 1)), (slice(0, 40), slice(1, 3))])
    for dump in (rows, cols):
        np.testing.assert_array_equal(_all_rows(dump), ROWS)


@pytest.mark.parametrize(
    "regions",
    [
        [(slice(0, 20), slice(0, 3))],  # the last 20 rows unmapped
        [(slice(0, 40), slice(0, 1)), (slice(0, 40), slice(2, 3))],  # one column unmapped
        [(slice(0, 20), slice(0, 3)), (slice(21, 40), slice(0, 3))],  # one row unmapped
        [(slice(0, 40), slice(0, 2)), (slice(0, 39), slice(2, 3))],  # one element unmapped
    ],
    ids=["half", "column", "row", "element"],
)
def test_unmapped_regions_are_refused(tmp_path: Path, regions: list[tuple[slice, slice]]) -> None:
    dump = _halves(tmp_path / "holes.h5", regions)
    with pytest.raises(InputError, match=r"/features is a virtual dataset with regions no source maps"):
        resolve_split(dump, None)


def test_a_source_smaller_than_its_mapping_is_refused(tmp_path: Path) -> None:
    dump = tmp_path / "short.h5"
    with h5py.File(dump, "w") as handle:
        handle["real"] = ROWS[:20]  # the mapping says 40 rows: 20 would read as the fill value
        layout = h5py.VirtualLayout(shape=ROWS.shape, dtype="<f8")
        layout[:] = h5py.VirtualSource(".", "real", shape=ROWS.shape)[:, :]
        handle.create_virtual_dataset("features", layout, fillvalue=-1.0)
        _labels(handle)
    with pytest.raises(InputError, match=r"mapping rows outside its source real"):
        resolve_split(dump, None)


def test_a_mapping_of_too_many_blocks_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hdf5_mapping, "MAX_BLOCKS", 64)  # HDF5 opens a VDS in time quadratic in its blocks
    dump = tmp_path / "fine.h5"
    n = 2 * (hdf5_mapping.MAX_BLOCKS + 8)
    with h5py.File(dump, "w") as handle:
        handle["real"] = np.zeros((n, 3))
        layout = h5py.VirtualLayout(shape=(n, 3), dtype="<f8")
        layout[0:n:2] = h5py.VirtualSource(".", "real", shape=(n, 3))[0:n:2]
        layout[1:n:2] = h5py.VirtualSource(".", "real", shape=(n, 3))[1:n:2]
        handle.create_virtual_dataset("features", layout)
        _labels(handle, n)
    with pytest.raises(InputError, match=r"more than \d+ mapped blocks"):
        resolve_split(dump, None)


def test_a_virtual_dataset_declaring_far_more_than_its_sources_store_is_refused(tmp_path: Path) -> None:
    dump = tmp_path / "tall.h5"
    rows, copies = 10**6, 100
    with h5py.File(dump, "w") as handle:  # 100 mappings of one compressed source: covered, not stored
        handle.create_dataset("zeros", data=np.zeros((rows, 3)), chunks=(65536, 3), compression="gzip")
        layout = h5py.VirtualLayout(shape=(rows * copies, 3), dtype="<f8")
        for start in range(0, rows * copies, rows):
            layout[start : start + rows] = h5py.VirtualSource(".", "zeros", shape=(rows, 3))
        handle.create_virtual_dataset("features", layout)
        handle.create_dataset(
            "labels", data=np.zeros(rows * copies, np.int8), chunks=(2**20,), compression="gzip"
        )
    with pytest.raises(
        InputError, match=r"/features is a virtual dataset declaring 2.2 GiB from sources storing"
    ):
        resolve_split(dump, None)


def test_a_relative_target_naming_two_files_is_ambiguous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dump").mkdir()
    (tmp_path / "cwd").mkdir()
    for folder in ("dump", "cwd"):
        (tmp_path / folder / "bytes.bin").write_bytes(ROWS.tobytes())
    dump = tmp_path / "dump" / "rel.h5"
    with h5py.File(dump, "w") as handle:
        handle.create_dataset(
            "features", shape=ROWS.shape, dtype="<f8", external=[("bytes.bin", 0, ROWS.nbytes)]
        )
        _labels(handle)
    monkeypatch.chdir(tmp_path / "cwd")
    with (
        external_data_allowed(),
        pytest.raises(InputError, match=r"bytes.bin, which names 2 different files"),
    ):
        resolve_split(dump, None)


def test_external_storage_shorter_than_declared_is_refused(tmp_path: Path) -> None:
    short = tmp_path / "short.bin"
    short.write_bytes(ROWS.tobytes()[:100])
    dump = tmp_path / "ext.h5"
    with h5py.File(dump, "w") as handle:
        _raw(handle, "features", short)
        _labels(handle)
    with external_data_allowed(), pytest.raises(InputError, match=r"which holds only 100 there"):
        resolve_split(dump, None)


@pytest.mark.parametrize("layout", ["chunked", "contiguous"])
def test_rows_never_written_are_refused(tmp_path: Path, layout: str) -> None:
    dump = tmp_path / "unwritten.h5"
    with h5py.File(dump, "w") as handle:
        chunks = (10, 3) if layout == "chunked" else None
        features = handle.create_dataset("features", shape=ROWS.shape, dtype="<f8", chunks=chunks)
        if layout == "chunked":
            features[:20] = ROWS[:20]
        _labels(handle)
    message = r"stores only 2 of its 4 chunks" if layout == "chunked" else r"stores 0 B: rows never written"
    with pytest.raises(InputError, match=rf"unwritten.h5: /features .*{message}"):
        resolve_split(dump, None)


def test_coverage_of_points_and_boxes() -> None:
    boxes = np.array([[[0, 0], [1, 1]], [[2, 0], [2, 0]], [[2, 1], [2, 1]]])
    assert not hdf5_mapping.unmapped([boxes], (3, 2))
    assert hdf5_mapping.unmapped([boxes[:2]], (3, 2))
    assert hdf5_mapping.unmapped([], (3, 2)) and not hdf5_mapping.unmapped([], (0, 2))


@pytest.mark.parametrize("source", [b"real", b"features"], ids=["other-dataset", "itself"])
def test_unlimited_mappings_are_refused(tmp_path: Path, source: bytes) -> None:
    """An unlimited mapping sizes the VDS from its sources at read time (of itself: a recursion)."""
    unlimited = h5py.h5s.UNLIMITED
    dump = tmp_path / "unlimited.h5"
    with h5py.File(dump, "w") as handle:
        handle.create_dataset("real", data=ROWS, maxshape=(None, 3), chunks=(5, 3))
        spaces = []
        for _ in range(2):
            space = h5py.h5s.create_simple(ROWS.shape, (unlimited, 3))
            space.select_hyperslab((0, 0), (unlimited, 1), (1, 1), (1, 3))
            spaces.append(space)
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_virtual(spaces[0], b".", source, spaces[1])
        h5py.h5d.create(handle.id, b"features", h5py.h5t.IEEE_F64LE, spaces[0], dcpl=dcpl)
        _labels(handle)
    with pytest.raises(InputError, match=r"/features is a virtual dataset with an unlimited mapping"):
        resolve_split(dump, None)
