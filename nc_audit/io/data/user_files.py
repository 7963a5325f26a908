"""User data files (.npz, HDF5): their arrays, split groups and model inputs, checked and converted.

See :mod:`nc_audit.io.data.datasets` for the layout a file may have.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

from nc_audit.core.errors import InputError, did_you_mean
from nc_audit.core.inputs import Inputs
from nc_audit.io.data.npy_header import check_npy_header
from nc_audit.io.data.specs import is_user_file
from nc_audit.io.guards.files import human_bytes, regular_file
from nc_audit.io.hdf5.attrs import attr_size_problem, heap_bound, variable_length
from nc_audit.io.hdf5.guard import check_dataset

_Arrays = dict[str, tuple[Inputs, Tensor]]  # split -> (inputs, labels)


def canonical(name: str, options: dict[str, Any]) -> str:
    """The canonical spec: name, then sorted key=value options (a cache key)."""
    shown = {k: v for k, v in sorted(options.items()) if v is not None}
    return name + (
        ":" + ",".join(f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
    )


def nearby_file(text: str) -> str:
    """' did you mean 'dir/val.npz'?' for a data file beside ``text`` whose name is close to it, or ''."""
    path = Path(text).expanduser()
    try:
        siblings = [p for p in path.parent.iterdir() if p.is_file() and is_user_file(p.name)]
    except OSError:
        return ""
    close = did_you_mean(path.name, [p.name for p in siblings])
    if not close:
        return ""
    chosen = close.split("'")[1]
    return f" did you mean '{path.parent / chosen if str(path.parent) != '.' else chosen}'?"


#: Most datasets a ``--data`` HDF5 file may hold (each is read whole).
MAX_DATASETS = 1024


def _collect(datasets: dict[str, h5py.Dataset], key: str, item: object) -> bool | None:
    """visititems callback: keep the datasets; True (stop) past MAX_DATASETS."""
    if isinstance(item, h5py.Dataset):
        datasets[key] = item
    return True if len(datasets) > MAX_DATASETS else None


def _file_keys(path: Path) -> tuple[dict[str, Any], Any]:
    """All arrays of a user file by slash-separated key, and its declared num_classes (or None)."""
    size = path.stat().st_size
    try:
        if path.suffix.lower() == ".npz":
            with zipfile.ZipFile(path) as archive:  # a zip: its declared sizes are checked before inflating
                _check_declared(path, sum(info.file_size for info in archive.infolist()), size)
                for info in archive.infolist():
                    _check_npy_header(path, archive, info)
            with np.load(path, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
            return arrays, arrays.pop("num_classes", None)
        datasets: dict[str, h5py.Dataset] = {}
        with h5py.File(path, "r") as handle:
            if handle.visititems(lambda k, v: _collect(datasets, k, v)):
                raise InputError(f"{path}: holds more than {MAX_DATASETS} datasets; refused")
            for key, dataset in datasets.items():  # every indirection followed: nothing outside, no fill
                if variable_length(dataset.id.get_type()):  # its bytes are not bounded by its declared size
                    raise InputError(f"{path}: /{key} holds variable-length values ({dataset.dtype}); "
                                     "arrays must be numbers")  # fmt: skip
                check_dataset(dataset, f"/{key}", path)
            _check_declared(path, sum(d.size * d.dtype.itemsize for d in datasets.values()), size)
            arrays = {key: dataset[()] for key, dataset in datasets.items()}
            declared = _num_classes_attr(handle, path, arrays.pop("num_classes", None))
        return arrays, declared
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise InputError(f"{path}: cannot read as {path.suffix} ({error})") from None


def _check_npy_header(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """An .npz member's .npy header, checked before numpy allocates its array (io/data/npy_header.py)."""
    with archive.open(info) as member:
        check_npy_header(member, info.file_size, f"{path}: array {info.filename}")


def _num_classes_attr(handle: h5py.File, path: Path, default: Any) -> Any:
    """The root attribute ``num_classes`` (else ``default``), its size bounded before reading."""
    if "num_classes" not in handle.attrs:
        return default
    problem = attr_size_problem(handle, "num_classes", heap_bound(handle))
    if problem is not None:
        raise InputError(f"{path}: its num_classes attribute {problem}; refused before reading it")
    return handle.attrs["num_classes"]


#: A dataset file's arrays may take at most this many bytes in memory, at most MAX_EXPANSION times the
#: file's size, and at most MAX_INFLATED_BYTES more than the file's size: a compressed .npz or HDF5
#: file that would inflate far beyond itself is refused before inflating (a 3.4 MB gzip file declaring
#: 3.4 GB is 1000 times its size, but 3.4 GB more than it).
MAX_DATASET_BYTES = 8 * 2**30
MAX_EXPANSION = 1000
MAX_INFLATED_BYTES = 256 * 2**20


def _check_declared(path: Path, declared: int, size: int) -> None:
    if declared > MAX_DATASET_BYTES or declared > MAX_EXPANSION * size + 2**20:
        raise InputError(
            f"{path}: its arrays declare {human_bytes(declared)} in a {human_bytes(size)} file; refused "
            f"(more than {human_bytes(MAX_DATASET_BYTES)} or {MAX_EXPANSION} times the file)"
        )
    if declared - size > MAX_INFLATED_BYTES:
        raise InputError(
            f"{path}: its arrays declare {human_bytes(declared)} in a {human_bytes(size)} file, "
            f"{human_bytes(declared - size)} more than it stores; refused before inflating (at most "
            f"{human_bytes(MAX_INFLATED_BYTES)} more: store the arrays uncompressed)"
        )


#: Arrays a split group passes positionally: ``inputs``, else a feature dump's ``features``.
POSITIONAL_NAMES = ("inputs", "features")
#: Arrays of a feature dump that are not model inputs.
IGNORED_NAMES = ("logits", "num_classes")


def _group_inputs(path: Path, prefix: str, arrays: dict[str, Any]) -> Any:
    """The inputs of one group: its positional array, else its other arrays by name (keyword inputs)."""
    for name in POSITIONAL_NAMES:
        if f"{prefix}{name}" in arrays:
            return arrays[f"{prefix}{name}"]
    named = {
        key[len(prefix) :]: value
        for key, value in arrays.items()
        if key.startswith(prefix)
        and "/" not in key[len(prefix) :]
        and key[len(prefix) :] not in ("labels", *IGNORED_NAMES)
    }
    if not named:
        found = ", ".join(sorted(arrays)) or "no arrays"
        raise InputError(
            f"{path}: needs arrays {prefix}inputs (or named model inputs such as {prefix}input_ids, "
            f"{prefix}attention_mask) and {prefix}labels; it has: {found}"
        )
    return dict(sorted(named.items()))


def _file_splits(path: Path, arrays: dict[str, Any]) -> tuple[dict[str, tuple[Any, Any]], bool]:
    """(split -> (inputs, labels), whether the file has no split groups): groups ``NAME/labels`` with
    their inputs, else the root arrays (returned as ``train``; such a file is any split asked for)."""
    groups = sorted({k.split("/")[0] for k in arrays if k.count("/") == 1 and not k.startswith("head/")})
    found = ", ".join(sorted(arrays)) or "no arrays"
    unlabelled = [g for g in groups if f"{g}/labels" not in arrays]
    if unlabelled:
        raise InputError(
            f"{path}: group {unlabelled[0]} has no {unlabelled[0]}/labels; every split group needs its "
            f"labels (it has: {found})"
        )
    root = "labels" in arrays
    if groups and root:
        raise InputError(f"{path}: holds both root labels and split groups ({', '.join(groups)}); keep one")
    if not groups and not root:
        raise InputError(
            f"{path}: needs arrays inputs and labels; it has: {found} "
            "(write arrays named inputs and labels, or groups train/inputs, train/labels, test/...)"
        )
    prefixes = {g: f"{g}/" for g in groups} if groups else {"train": ""}
    splits = {
        split: (_group_inputs(path, prefix, arrays), arrays[f"{prefix}labels"])
        for split, prefix in prefixes.items()
    }
    return splits, not groups


def _as_tensor(where: str, name: str, array: Any, labels: Any, positional: bool) -> Tensor:
    if not isinstance(array, np.ndarray) or array.ndim < 1 or len(array) != len(labels):
        shape = getattr(array, "shape", None)
        raise InputError(f"{where}: {name} {shape} and labels {labels.shape} must be (N, ...) and (N,), N>0")
    if np.issubdtype(array.dtype, np.integer) or (array.dtype == np.bool_ and not positional):
        return torch.from_numpy(array.astype(np.int64))  # token ids and attention masks
    if not (np.issubdtype(array.dtype, np.floating) or array.dtype == np.bool_):
        raise InputError(f"{where}: {name} must be numbers, found dtype {array.dtype}")
    return torch.from_numpy(array.astype(np.float32))


def _checked_pair(path: Path, split: str, inputs: Any, labels: Any) -> tuple[Inputs, Tensor]:
    where = f"{path} [{split}]"
    if labels.dtype == np.bool_ or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{where}: labels must be integers, found dtype {labels.dtype}")
    if labels.ndim != 1 or len(labels) == 0:
        raise InputError(f"{where}: labels {labels.shape} must be (N,), N>0")
    if labels.min() < 0:
        raise InputError(f"{where}: labels hold {int((labels < 0).sum())} negative values; use 0..C-1")
    y = torch.from_numpy(labels.astype(np.int64))
    if isinstance(inputs, dict):
        return {name: _as_tensor(where, name, array, labels, False) for name, array in inputs.items()}, y
    return _as_tensor(where, "inputs", inputs, labels, True), y


def user_file(path_text: str, options: dict[str, Any]) -> tuple[_Arrays, int, str, bool]:
    path = Path(path_text).expanduser().resolve()
    missing = f"{path_text}: no such file;{nearby_file(path_text)}".rstrip(";") if not path.exists() else None
    regular_file(path, "dataset file", missing=missing)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if options["sha256"] is not None and options["sha256"] != digest.hexdigest():
        raise InputError(f"{path}: contents changed since the spec was written (sha256 differs)")
    arrays, declared = _file_keys(path)
    raw, root_only = _file_splits(path, arrays)
    splits = {s: _checked_pair(path, s, x, y) for s, (x, y) in raw.items()}
    largest = max(int(y.max()) for _, y in splits.values())
    try:
        num_classes = largest + 1 if declared is None else int(np.asarray(declared).item())
    except (TypeError, ValueError):
        raise InputError(f"{path}: num_classes must be one integer, got {declared!r}") from None
    if num_classes <= largest:
        raise InputError(f"{path}: num_classes={num_classes} but labels reach {largest}")
    return splits, num_classes, canonical(str(path), {"sha256": digest.hexdigest()}), root_only
