"""Tables of text and labels, streamed row by row: a Hugging Face ``datasets`` folder written by
``save_to_disk`` (a Dataset, or a DatasetDict of splits; its Arrow files memory-mapped, read where they
are), a Parquet file (read a batch of rows at a time with pyarrow), a JSONL file (one JSON object a line).

The folder is untrusted: every data file its ``state.json`` names must be a plain file name of the
folder (no path, no link out of it, a regular file) before ``datasets`` opens it. Labels are integers
(0..C-1), a ``ClassLabel`` feature, or strings (classes: the sorted distinct strings). Only the label
column is read whole (N values); text is read as it is consumed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nc_audit.core.errors import InputError, first_line
from nc_audit.io.guards.files import load_json, regular_file

#: Longest JSONL line read (bytes).
MAX_LINE_BYTES = 16 * 1024 * 1024
#: Most uncompressed bytes of one Parquet row group's text and label columns (and of the label column).
MAX_ROW_GROUP_BYTES = 512 * 1024 * 1024
#: Most distinct classes a label column may hold.
MAX_CLASSES = 1_000_000
Row = tuple[str, int]


@dataclass(frozen=True)
class LabelMap:
    """How a label column's values become class indices: strings by sorted position, integers as is."""

    names: tuple[str, ...] | None
    num_classes: int

    def index(self, value: object, where: str) -> int:
        if self.names is not None and isinstance(value, str):
            return self.names.index(value) if value in self.names else -1
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < self.num_classes:
            raise InputError(
                f"{where}: label {str(value)[:40]!r} is not an integer from 0 to {self.num_classes - 1}"
            )
        return value


def label_map(values: list[Any], where: str, declared: list[str] | None = None) -> LabelMap:
    """The classes of a label column (``declared``: a ClassLabel's names)."""
    if declared is not None:
        return LabelMap(None, len(declared))
    if not values:
        raise InputError(f"{where}: no rows")
    if all(isinstance(v, str) for v in values):
        names = tuple(sorted(set(values)))
        if len(names) > MAX_CLASSES:
            raise InputError(f"{where}: more than {MAX_CLASSES:,} distinct labels")
        return LabelMap(names, len(names))
    bad = next((v for v in values if isinstance(v, bool) or not isinstance(v, int) or v < 0), None)
    if bad is not None or max(values) >= MAX_CLASSES:
        shown = bad if bad is not None else max(values)
        raise InputError(
            f"{where}: label {str(shown)[:40]!r} is not a class index (an integer >= 0) or a string"
        )
    return LabelMap(None, int(max(values)) + 1)


def file_digest(paths: list[Path]) -> str:
    """sha256 over each file's name and content (the cache key part)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"\n{path.name}\0".encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _need(columns: list[str], wanted: list[str], where: str) -> None:
    for column in wanted:
        if column not in columns:
            raise InputError(
                f"{where}: no column {column!r}; its columns: {', '.join(columns[:20])} "
                "(pick them with --text-column / --label-column)"
            )


# --- Hugging Face datasets folders --------------------------------------------------------------------------


def _require(name: str) -> Any:
    """The module ``name`` (datasets, pyarrow.parquet); InputError naming the extra when it is absent."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise InputError(
            f"a datasets folder or Parquet file as --data needs {name.partition('.')[0]}: pip install 'nc-audit[data]'"
        ) from None


def _inside(path: Path, root: Path, what: str) -> Path:
    """``path`` when it is a regular file whose real location is inside ``root`` (checked before a byte
    of it is read); else InputError naming it."""
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
        raise InputError(f"{path}: a link out of the datasets folder {root}; refused")
    regular_file(path, what)
    return path


def _plain_names(values: object, where: Path, what: str) -> list[str]:
    names = values if isinstance(values, list) else [values]
    for name in names:
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise InputError(
                f"{where}: {what} {str(name)[:80]!r} is a path; only a file of the folder is read"
            )
    return [str(name) for name in names]


def _checked_split_folder(folder: Path, root: Path) -> list[Path]:
    """The Arrow files ``folder/state.json`` names, each a regular file of the folder; the folder's
    state.json and dataset_info.json are checked the same way (datasets reads both)."""
    state_path = _inside(folder / "state.json", root, "datasets state file")
    info = folder / "dataset_info.json"
    if info.exists() or info.is_symlink():
        _inside(info, root, "datasets info file")
    state = load_json(state_path, "datasets state file")
    try:
        listed = [item["filename"] for item in state["_data_files"]]
    except (KeyError, TypeError) as error:
        raise InputError(
            f"{state_path}: not a datasets state file (no _data_files: {first_line(error)})"
        ) from None
    names = _plain_names(listed, state_path, "data file")
    return [_inside(folder / name, root, "datasets data file") for name in names]


def hf_splits(root: Path) -> dict[str, Path]:
    """``{split: folder}`` of a save_to_disk folder (a Dataset is ``{"train": root}``)."""
    listing = root / "dataset_dict.json"
    if not (listing.exists() or listing.is_symlink()):
        return {"train": root}
    values = load_json(_inside(listing, root, "datasets split list"), "datasets split list")
    if not isinstance(values, dict) or not isinstance(values.get("splits"), list):
        raise InputError(f"{listing}: not a datasets split list (no list of splits)")
    names = _plain_names(values["splits"], listing, "split")
    real_root = os.path.realpath(root)
    for name in names:
        if os.path.commonpath([real_root, os.path.realpath(root / name)]) != real_root:
            raise InputError(f"{root / name}: a link out of the datasets folder {root}; refused")
    return {name: root / name for name in names}


def open_hf(folder: Path, root: Path) -> Any:
    """The memory-mapped ``datasets.Dataset`` of one split folder (its files checked first)."""
    _checked_split_folder(folder, root)
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    datasets = _require("datasets")

    try:
        loaded = datasets.load_from_disk(str(folder), keep_in_memory=False)
    except Exception as error:  # datasets raises FileNotFoundError, ValueError, pyarrow errors, ...
        raise InputError(
            f"{folder}: not a readable datasets folder ({type(error).__name__}: {first_line(error)})"
        ) from None
    if not isinstance(loaded, datasets.Dataset):
        raise InputError(f"{folder}: not one split of a datasets folder")
    return loaded


def hf_digest(root: Path) -> str:
    """Digest of every split's name and Arrow files (which hold the rows and the features' schema); not
    state.json, whose fingerprint is random bookkeeping."""
    digest = hashlib.sha256()
    for name, folder in sorted(hf_splits(root).items()):
        digest.update(f"{name}\0{file_digest(_checked_split_folder(folder, root))}\n".encode())
    return digest.hexdigest()


class HFTable(torch.utils.data.Dataset[Row]):
    """(text, label) rows of one split of a datasets folder, read from its memory-mapped Arrow files."""

    def __init__(self, data: Any, text: str, label: str, labels: LabelMap, where: str) -> None:
        self.data, self.text, self.label, self.labels, self.where = data, text, label, labels, where

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> Row:
        row = self.data[index]
        return str(row[self.text]), self.labels.index(row[self.label], f"{self.where} row {index}")


def hf_table(folder: Path, root: Path, text: str, label: str, where: str) -> HFTable:
    data = open_hf(folder, root)
    _need(list(data.column_names), [text, label], where)
    feature = data.features[label]
    declared = list(feature.names) if hasattr(feature, "names") else None
    values = None if declared else data.data.column(label).to_pylist()  # the N labels only
    return HFTable(data, text, label, label_map(values or [], where, declared), where)


# --- Parquet and JSONL files --------------------------------------------------------------------------------


def _share(index: int) -> bool:
    """Whether row ``index`` is this DataLoader worker's (rows dealt out in turn; all rows with none)."""
    info = torch.utils.data.get_worker_info()
    return info is None or index % info.num_workers == info.id


class ParquetTable(torch.utils.data.IterableDataset[Row]):
    """(text, label) rows of a Parquet file, a batch of rows at a time (each worker its share)."""

    def __init__(self, path: Path, text: str, label: str, labels: LabelMap, rows: int) -> None:
        self.path, self.text, self.label, self.labels, self.rows = path, text, label, labels, rows

    def __len__(self) -> int:
        return self.rows

    def __iter__(self) -> Iterator[Row]:
        pq = _require("pyarrow.parquet")

        index = 0
        with pq.ParquetFile(self.path) as handle:
            for batch in handle.iter_batches(batch_size=256, columns=[self.text, self.label]):
                for text, label in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
                    if _share(index):
                        yield str(text), self.labels.index(label, f"{self.path} row {index}")
                    index += 1


def _check_declared_sizes(path: Path, metadata: Any, used: list[int]) -> None:
    """Refuse a Parquet file whose row group (the unit pyarrow decompresses) or label column declares
    more uncompressed bytes than nc-audit holds at once, before any page is read."""
    label_bytes = 0
    for index in range(metadata.num_row_groups):
        group = metadata.row_group(index)
        sizes = [group.column(column).total_uncompressed_size for column in used]
        if sum(sizes) > MAX_ROW_GROUP_BYTES:
            raise InputError(
                f"{path}: row group {index} declares {sum(sizes):,} bytes of text and labels uncompressed, "
                f"more than the {MAX_ROW_GROUP_BYTES:,} read at once; rewrite it with smaller row groups"
            )
        label_bytes += sizes[1]
    if label_bytes > MAX_ROW_GROUP_BYTES:
        raise InputError(f"{path}: its label column declares {label_bytes:,} bytes uncompressed; refused")


def parquet_table(path: Path, text: str, label: str) -> ParquetTable:
    pq = _require("pyarrow.parquet")

    regular_file(path, "Parquet file")
    try:
        with pq.ParquetFile(path) as handle:
            columns = list(handle.schema_arrow.names)
            _need(columns, [text, label], str(path))
            rows = handle.metadata.num_rows
            _check_declared_sizes(path, handle.metadata, [columns.index(text), columns.index(label)])
            values = pq.read_table(path, columns=[label]).column(0).to_pylist()
    except InputError:
        raise
    except Exception as error:  # pyarrow raises ArrowInvalid, OSError, ...
        raise InputError(
            f"{path}: not a readable Parquet file ({type(error).__name__}: {first_line(error)})"
        ) from None
    return ParquetTable(path, text, label, label_map(values, str(path)), rows)


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, "rb") as handle:
        for number, line in enumerate(iter(lambda: handle.readline(MAX_LINE_BYTES + 1), b""), start=1):
            if len(line) > MAX_LINE_BYTES:
                raise InputError(f"{path}: line {number} is longer than {MAX_LINE_BYTES:,} bytes")
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, UnicodeDecodeError) as error:
                raise InputError(f"{path}: line {number} is not JSON ({first_line(error)})") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}: line {number} is not a JSON object")
            yield number, row


class JsonlTable(torch.utils.data.IterableDataset[Row]):
    """(text, label) rows of a JSONL file, one line at a time (each worker its share)."""

    def __init__(self, path: Path, text: str, label: str, labels: LabelMap, rows: int) -> None:
        self.path, self.text, self.label, self.labels, self.rows = path, text, label, labels, rows

    def __len__(self) -> int:
        return self.rows

    def __iter__(self) -> Iterator[Row]:
        for index, (number, row) in enumerate(_json_lines(self.path)):
            if _share(index):
                yield (
                    str(row.get(self.text, "")),
                    self.labels.index(row.get(self.label), f"{self.path} line {number}"),
                )


def jsonl_table(path: Path, text: str, label: str) -> JsonlTable:
    regular_file(path, "JSONL file")
    values = []
    for number, row in _json_lines(path):
        _need(list(row), [text, label], f"{path} line {number}")
        values.append(row[label])
    return JsonlTable(path, text, label, label_map(values, str(path)), len(values))
