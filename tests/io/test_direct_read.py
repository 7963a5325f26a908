"""Reading a dump straight from its bytes gives exactly what h5py reads, or falls back to h5py.

``iter_chunks(direct=True)`` reads uncompressed, full-row layouts (either byte order) straight from the
file (:mod:`nc_audit.io.hdf5.direct`); every other layout must be refused by ``DirectRows.open`` and
read through h5py. Either way the rows, their order and the labels must be those that were written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from nc_audit.core.errors import InputError
from nc_audit.io.dumps.reader import SplitInfo, iter_chunks, resolve_split
from nc_audit.io.hdf5.direct import DirectRows
from nc_audit.io.hdf5.guard import external_data_allowed

N, D = 333, 12  # rows and width of the test dumps (N is not a multiple of the 37-row HDF5 chunks)
STORED_CHUNK = 37

Layout = Callable[[h5py.File, np.ndarray], None]


def make_data(
    dtype: np.dtype | type | str, n: int = N, d: int = D, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Random features of ``dtype`` (distinct values in every row) and int64 labels."""
    rng = np.random.default_rng(seed)
    X = (100.0 * rng.normal(size=(n, d))).astype(dtype)  # (n, d)
    y = rng.integers(0, 5, size=n).astype(np.int64)  # (n,)
    return X, y


def write_dump(
    path: Path, X: np.ndarray, y: np.ndarray, userblock_size: int = 0, **features_kw: object
) -> Path:
    """The minimal dump (/features, /labels); ``features_kw`` go to create_dataset for /features."""
    options = {"userblock_size": userblock_size} if userblock_size else {}
    with h5py.File(path, "w", **options) as handle:
        handle.create_dataset("features", data=X, **features_kw)
        handle.create_dataset("labels", data=y)
    return path


def readable_directly(path: Path) -> bool:
    """Whether DirectRows.open accepts the file's /features (closing what it opened)."""
    with h5py.File(path, "r") as handle:
        reader = DirectRows.open(handle["features"])
        if reader is None:
            return False
        reader.close()
        return True


def read_all(
    info: SplitInfo, chunk_rows: int | None, rows: tuple[int, int] | None, direct: bool
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """All chunks of one pass concatenated, and the row count of each chunk."""
    chunks = list(iter_chunks(info, chunk_rows=chunk_rows, rows=rows, direct=direct))
    features = torch.cat([features for features, _ in chunks])
    labels = torch.cat([labels for _, labels in chunks])
    return features, labels, [int(labels.shape[0]) for _, labels in chunks]


RANGES = [  # (rows, chunk_rows): ranges and steps deliberately not aligned with the 37-row HDF5 chunks
    (None, None),
    (None, 50),
    ((5, 300), 50),
    ((36, 75), 7),
    ((100, 101), 1000),
    ((0, N), 37),
    ((200, N), 1),
]


# --- readable_directly layouts: the fast path is taken and gives h5py's data exactly --------------------------
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, ">f4", ">f8"])
@pytest.mark.parametrize("chunks", [None, (STORED_CHUNK, D)], ids=["contiguous", "chunked37"])
def test_direct_reads_equal_h5py_reads_and_the_written_rows(
    tmp_path: Path, dtype: type, chunks: tuple[int, int] | None
) -> None:
    """Direct and h5py passes agree exactly with each other and with the written array, for every
    row range and chunk_rows; no chunk exceeds chunk_rows; a chunked layout's chunks never straddle
    a stored chunk; and the reader really accepted the layout."""
    X, y = make_data(dtype)
    path = write_dump(tmp_path / "dump.h5", X, y, chunks=chunks)
    assert readable_directly(path), "the fast path must be exercised for this layout"
    info = resolve_split(path, None)
    for rows, chunk_rows in RANGES:
        a, b = rows if rows is not None else (0, N)
        direct_features, direct_labels, sizes = read_all(info, chunk_rows, rows, direct=True)
        plain_features, plain_labels, _ = read_all(info, chunk_rows, rows, direct=False)
        case = (rows, chunk_rows)
        native = X.astype(X.dtype.newbyteorder("="))  # big-endian rows arrive in native order
        assert direct_features.dtype == torch.from_numpy(native).dtype, case
        assert torch.equal(direct_features, plain_features), case
        assert torch.equal(direct_labels, plain_labels), case
        assert torch.equal(direct_features, torch.from_numpy(native[a:b])), case
        assert torch.equal(direct_labels, torch.from_numpy(y[a:b])), case
        assert max(sizes) <= (chunk_rows or N), case
        if chunks is not None:
            starts = a + np.concatenate([[0], np.cumsum(sizes)[:-1]])
            for start, size in zip(starts, sizes, strict=True):
                assert start // STORED_CHUNK == (start + size - 1) // STORED_CHUNK, (case, start, size)


def test_pieces_cover_the_range_in_order_within_stored_chunks(tmp_path: Path) -> None:
    """DirectRows.chunks: consecutive half-open ranges from start to stop, each ≤ step rows and inside
    one 37-row stored chunk (checked against the boundaries computed here)."""
    X, y = make_data(np.float32)
    path = write_dump(tmp_path / "dump.h5", X, y, chunks=(STORED_CHUNK, D))
    with h5py.File(path, "r") as handle:
        reader = DirectRows.open(handle["features"])
        assert reader is not None
        try:
            chunks = list(reader.chunks(5, 300, 50))
        finally:
            reader.close()
    expected, begin = [], 5
    while begin < 300:
        end = min(begin + 50, 300, (begin // 37 + 1) * 37)
        expected.append((begin, end))
        begin = end
    assert chunks == expected
    assert chunks[0] == (5, 37) and chunks[-1] == (296, 300)


# --- layouts that must fall back to h5py ---------------------------------------------------------------
FALLBACKS: dict[str, tuple[str, dict[str, object]]] = {
    "gzip": ("<f4", {"compression": "gzip", "chunks": (STORED_CHUNK, D)}),
    "shuffle-only": ("<f4", {"shuffle": True, "chunks": (STORED_CHUNK, D)}),
    "narrow-chunks": ("<f4", {"chunks": (16, D // 2)}),
    "userblock": ("<f4", {"userblock_size": 512}),
    "userblock-chunked": ("<f8", {"userblock_size": 1024, "chunks": (STORED_CHUNK, D)}),
}


@pytest.mark.parametrize("name", list(FALLBACKS))
def test_unreadable_directly_layouts_fall_back_with_identical_data(tmp_path: Path, name: str) -> None:
    """DirectRows.open refuses the layout, and iter_chunks(direct=True) still yields the written rows."""
    dtype, options = FALLBACKS[name]
    X, y = make_data(dtype)
    path = write_dump(tmp_path / "dump.h5", X, y, **options)  # type: ignore[arg-type]
    assert not readable_directly(path)
    info = resolve_split(path, None)
    for rows, chunk_rows in RANGES:
        a, b = rows if rows is not None else (0, N)
        features, labels, sizes = read_all(info, chunk_rows, rows, direct=True)
        plain_features, plain_labels, _ = read_all(info, chunk_rows, rows, direct=False)
        assert torch.equal(features, plain_features), (rows, chunk_rows)
        assert torch.equal(labels, plain_labels), (rows, chunk_rows)
        assert np.array_equal(features.numpy(), X[a:b]), (rows, chunk_rows)  # values, whatever the byte order
        assert torch.equal(labels, torch.from_numpy(y[a:b])), (rows, chunk_rows)
        assert max(sizes) <= (chunk_rows or N), (rows, chunk_rows)


def test_external_storage_is_not_read_directly(tmp_path: Path) -> None:
    """Features stored in an external raw file (a trusted multi-file dump: --allow-external-data) are
    refused by the direct reader and read through h5py."""
    X, y = make_data(np.float32)
    raw = tmp_path / "features.raw"
    path = write_dump(tmp_path / "dump.h5", X, y, external=[(str(raw), 0, h5py.h5f.UNLIMITED)])
    assert raw.stat().st_size == X.nbytes  # the rows really live outside the HDF5 file
    assert not readable_directly(path)
    with pytest.raises(InputError, match="keeps its bytes in the external file"):  # refused by default
        resolve_split(path, None)
    with external_data_allowed():
        features, labels, _ = read_all(resolve_split(path, None), 50, (5, 300), direct=True)
    assert torch.equal(features, torch.from_numpy(X[5:300]))
    assert torch.equal(labels, torch.from_numpy(y[5:300]))


def test_non_float_non_2d_and_non_sec2_datasets_are_not_read_directly(tmp_path: Path) -> None:
    """The 1-D integer labels, an integer 2-D array and a file opened with the 'core' driver are refused."""
    X, y = make_data(np.float32)
    path = write_dump(tmp_path / "dump.h5", X, y)
    with h5py.File(path, "a") as handle:
        handle["ints"] = np.arange(N * D, dtype=np.int32).reshape(N, D)
        handle["cube"] = np.zeros((4, 3, 2), dtype=np.float32)
    with h5py.File(path, "r") as handle:
        assert DirectRows.open(handle["labels"]) is None
        assert DirectRows.open(handle["ints"]) is None
        assert DirectRows.open(handle["cube"]) is None
    with h5py.File(path, "r", driver="core") as handle:
        assert DirectRows.open(handle["features"]) is None


# --- chunks that were never written are refused; unwritten rows of stored chunks are in the file ---------
@pytest.mark.parametrize(
    "written", [[(0, 41)], [(0, 41), (130, 140), (320, N)]], ids=["first-41", "scattered"]
)
def test_unwritten_chunks_are_refused_before_any_row_is_read(
    tmp_path: Path, written: list[tuple[int, int]]
) -> None:
    """A chunked dataset with chunks never written: its rows would read as the fill value (rows nobody
    wrote, measured as data), so the dump is refused naming the dataset and the count."""
    X, y = make_data(np.float32)
    path = tmp_path / "partial.h5"
    with h5py.File(path, "w") as handle:
        features = handle.create_dataset("features", shape=(N, D), dtype="<f4", chunks=(32, D), fillvalue=7.5)
        for a, b in written:
            features[a:b] = X[a:b]
        handle["labels"] = y
    with h5py.File(path, "r") as handle:
        allocated = handle["features"].id.get_num_chunks()
    assert 0 < allocated < -(-N // 32)  # some stored chunks really are missing
    with pytest.raises(
        InputError, match=rf"partial.h5: /features .* stores only {allocated} of its 11 chunks"
    ):
        resolve_split(path, None)


def test_every_chunk_stored_reads_its_stored_bytes_also_where_rows_were_not_written(tmp_path: Path) -> None:
    """Every chunk stored, some only partly written: the file holds the fill value there (HDF5 wrote it
    into the chunk), and the direct pass equals h5py's and the expected array."""
    X, y = make_data(np.float32)
    path = tmp_path / "partial.h5"
    written = [(begin, min(begin + 5, N)) for begin in range(0, N, 32)]
    with h5py.File(path, "w") as handle:
        features = handle.create_dataset("features", shape=(N, D), dtype="<f4", chunks=(32, D), fillvalue=7.5)
        for a, b in written:
            features[a:b] = X[a:b]
        handle["labels"] = y
    expected = np.full((N, D), 7.5, dtype=np.float32)  # (N, d)
    for a, b in written:
        expected[a:b] = X[a:b]
    assert readable_directly(path)
    info = resolve_split(path, None)
    for rows, chunk_rows in [(None, None), (None, 10), ((30, 200), 50), ((41, 64), 100)]:
        a, b = rows if rows is not None else (0, N)
        direct_features, direct_labels, _ = read_all(info, chunk_rows, rows, direct=True)
        plain_features, _, _ = read_all(info, chunk_rows, rows, direct=False)
        assert torch.equal(direct_features, plain_features), (rows, chunk_rows)
        assert torch.equal(direct_features, torch.from_numpy(expected[a:b])), (rows, chunk_rows)
        assert torch.equal(direct_labels, torch.from_numpy(y[a:b])), (rows, chunk_rows)


# --- direct chunks are private copies -------------------------------------------------------------------
@pytest.mark.parametrize("chunks", [None, (STORED_CHUNK, D)], ids=["contiguous", "chunked37"])
def test_direct_chunks_are_writable_and_writes_do_not_reach_the_file(
    tmp_path: Path, chunks: tuple[int, int] | None
) -> None:
    """Writing into every chunk read directly (chunks of 10 rows share file pages with their neighbours) changes
    neither the other chunks, nor the file as h5py then reads it, nor a second direct pass."""
    X, y = make_data(np.float32)
    path = write_dump(tmp_path / "dump.h5", X, y, chunks=chunks)
    assert readable_directly(path)
    info = resolve_split(path, None)
    chunks_read = list(iter_chunks(info, chunk_rows=10, direct=True))
    for index, (features, _) in enumerate(chunks_read):
        assert features.numpy().flags.writeable
        if index % 2 == 0:
            features.fill_(-1.0)  # a neighbour sharing the page must keep its own view of the file
    begin = 0
    for index, (features, _) in enumerate(chunks_read):
        n = int(features.shape[0])
        if index % 2 == 1:
            assert torch.equal(features, torch.from_numpy(X[begin : begin + n])), index
        else:
            assert bool((features == -1.0).all()), index
        begin += n
    del chunks_read
    with h5py.File(path, "r") as handle:
        assert np.array_equal(handle["features"][...], X)
    again, _, _ = read_all(info, 10, None, direct=True)
    assert torch.equal(again, torch.from_numpy(X))


# --- truncated files ---------------------------------------------------------------------------------------
def test_truncated_dump_raises_input_error(tmp_path: Path) -> None:
    """A dump cut to half its size (the features' bytes run past the end) is an InputError, whether
    resolve_split or the direct pass notices it, never another exception or a crash."""
    X, y = make_data(np.float32, n=3000, d=16)
    path = write_dump(tmp_path / "dump.h5", X, y)
    os.truncate(path, path.stat().st_size // 2)
    with pytest.raises(InputError, match=r"truncated or damaged|cannot read rows"):
        info = resolve_split(path, None)
        for _ in iter_chunks(info, chunk_rows=500, direct=True):
            pass


def test_truncated_after_resolve_raises_input_error_naming_the_rows(tmp_path: Path) -> None:
    """A file that shrinks after resolve_split and the first chunk (a concurrent rewrite): the next direct
    read past the end is an InputError 'cannot read rows a..b', not a raw OSError (or, had the rows been
    memory-mapped, a SIGBUS)."""
    X, y = make_data(np.float32, n=3000, d=16)
    path = write_dump(tmp_path / "dump.h5", X, y)
    info = resolve_split(path, None)
    chunks = iter_chunks(info, chunk_rows=500, direct=True)
    first, _ = next(chunks)
    assert torch.equal(first.clone(), torch.from_numpy(X[:500]))
    del first
    os.truncate(path, path.stat().st_size // 2)
    with pytest.raises(InputError, match=r"cannot read rows \d+\.\.\d+"):
        for _ in chunks:
            pass
