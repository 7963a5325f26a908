"""Offline datasets, deterministic by seed: built-ins (digits, gaussian, modadd) and user .npz / HDF5 arrays.

A spec is ``NAME[:key=value,...]`` or a path to a user file. ``ArrayDataset.spec`` is its canonical form
(sorted keys, defaults filled in; for files the absolute path and the content's sha256), a cache key.
"""

from __future__ import annotations

import hashlib
import math
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

from nc_audit.core.errors import InputError

BUILTIN_DATASETS: tuple[str, ...] = ("digits", "gaussian", "modadd")
USER_SUFFIXES: tuple[str, ...] = (".npz", ".h5", ".hdf5")
SPLITS: tuple[str, ...] = ("train", "test")
DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = (
    0  # the digits split is fixed, independent of any user seed, so results compare across runs
)


@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """One split of a dataset held in memory: inputs (N, ...) and int64 labels (N,) in a fixed order."""

    name: str
    split: str
    inputs: Tensor  # (N, *input_shape)
    labels: Tensor  # (N,) int64
    num_classes: int
    spec: str
    input_shape: tuple[int, ...]

    def __len__(self) -> int:
        """Number of samples N."""
        return int(self.labels.shape[0])

    def batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """(inputs, labels) in order, ``batch_size`` at a time (the last batch may be smaller)."""
        if batch_size < 1:
            raise InputError(f"batch size must be a positive integer, got {batch_size}")
        for start in range(0, len(self), batch_size):
            yield self.inputs[start : start + batch_size], self.labels[start : start + batch_size]


# --- spec parsing -------------------------------------------------------------------------------------------

_Option = tuple[Callable[[str], Any], Any, str]  # (parser, default, help for error messages)


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text) if text.lstrip("+-").isdigit() else low - 1
        if value < low:
            raise ValueError(f"must be an integer >= {low}")
        return value

    return parse


def _float_in(low: float, high: float, closed_low: bool = True) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value > high or value < low or (value == low and not closed_low):
            raise ValueError(f"must be a number in {'[' if closed_low else '('}{low}, {high}]")
        return value

    return parse


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    return parse


_OPTIONS: dict[str, dict[str, _Option]] = {
    "digits": {"layout": (_choice("flat", "image"), "flat", "flat (N, 64) or image (N, 1, 8, 8)")},
    "gaussian": {
        "classes": (_int_at_least(2), 10, "number of classes C"),
        "dim": (_int_at_least(1), 32, "input dimension d"),
        "samples": (_int_at_least(2), 2000, "samples per split"),
        "separation": (_float_in(0.0, 1e6), 4.0, "norm of each class centre; unit-variance noise"),
        "imbalance": (_float_in(1.0, 1e6), 1.0, "largest / smallest class size (1 = balanced)"),
        "seed": (_int_at_least(0), 0, "random seed"),
    },
    "modadd": {
        "p": (_int_at_least(2), 97, "modulus p; labels 0..p-1"),
        "train_fraction": (
            _float_in(0.0, 1.0, closed_low=False),
            0.4,
            "share of the p² pairs used for training",
        ),
        "seed": (_int_at_least(0), 0, "random seed"),
    },
    "file": {"sha256": (str, None, "expected sha256 of the file (set by the canonical spec)")},
}


def _is_user_file(path_part: str) -> bool:
    return path_part.lower().endswith(USER_SUFFIXES)


def _split_spec(spec: str) -> tuple[str, str, str]:
    """(kind, name or path, option text); kind is a built-in name or "file"."""
    spec = spec.strip()
    if _is_user_file(spec):
        return "file", spec, ""
    head, _, option_text = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if _is_user_file(head):
        return "file", head, option_text
    name, _, option_text = spec.partition(":")
    if name not in BUILTIN_DATASETS:
        raise InputError(
            f"unknown dataset {name!r}; built-in datasets: {', '.join(BUILTIN_DATASETS)}, "
            f"or a path to a {'/'.join(USER_SUFFIXES)} file with arrays inputs and labels"
        )
    return name, name, option_text


def _parse_options(kind: str, label: str, option_text: str) -> dict[str, Any]:
    """Options with defaults filled in, each checked by its parser."""
    known = _OPTIONS[kind]
    given: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in option_text.split(","))):
        key, sep, value = (s.strip() for s in item.partition("="))
        if not sep or not key:
            raise InputError(f"dataset {label}: option {item!r} is not key=value")
        if key not in known:
            accepted = "; ".join(f"{k} ({h})" for k, (_, _, h) in known.items())
            raise InputError(f"dataset {label}: unknown option {key!r}; accepted: {accepted}")
        if key in given:
            raise InputError(f"dataset {label}: option {key!r} given twice")
        given[key] = value
    options: dict[str, Any] = {}
    for key, (parse, default, help_text) in known.items():
        try:
            options[key] = parse(given[key]) if key in given else default
        except ValueError as error:
            raise InputError(f"dataset {label}: {key}={given[key]!r} {error} ({help_text})") from None
    return options


def _canonical(name: str, options: dict[str, Any]) -> str:
    shown = {k: v for k, v in sorted(options.items()) if v is not None}
    return name + (
        ":" + ",".join(f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
    )


# --- built-in datasets --------------------------------------------------------------------------------------

_Arrays = dict[str, tuple[Tensor, Tensor]]  # split -> (inputs, labels)


def _digits(options: dict[str, Any]) -> tuple[_Arrays, int]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    X = torch.from_numpy(bunch.data.astype(np.float32) / 16.0)  # (1797, 64), pixel values 0..16 -> 0..1
    y = torch.from_numpy(bunch.target.astype(np.int64))  # (1797,)
    if options["layout"] == "image":
        X = X.reshape(-1, 1, 8, 8)  # (1797, 1, 8, 8)
    index = np.arange(len(y))
    train, test = train_test_split(
        index, test_size=DIGITS_TEST_FRACTION, stratify=bunch.target, random_state=DIGITS_SPLIT_SEED
    )
    return {
        s: (X[torch.from_numpy(i)], y[torch.from_numpy(i)]) for s, i in (("train", train), ("test", test))
    }, 10


def _class_counts(total: int, classes: int, imbalance: float) -> list[int]:
    """Sizes summing to total, geometric from largest (class 0) to smallest with ratio imbalance, each >= 1."""
    weights = [imbalance ** (-c / (classes - 1)) for c in range(classes)]
    shares = [total * w / sum(weights) for w in weights]
    counts = [max(1, math.floor(s)) for s in shares]
    by_remainder = sorted(range(classes), key=lambda c: counts[c] - shares[c])  # most under-served first
    for i in range(total - sum(counts)):
        counts[by_remainder[i % classes]] += 1
    while sum(counts) > total:  # only when the max(1, ·) floor overshot
        counts[counts.index(max(counts))] -= 1
    return counts


def _gaussian(options: dict[str, Any]) -> tuple[_Arrays, int]:
    C, d, n = options["classes"], options["dim"], options["samples"]
    if n < C:
        raise InputError(f"dataset gaussian: samples={n} must be at least classes={C} (one sample per class)")
    generator = torch.Generator().manual_seed(options["seed"])
    directions = torch.randn(C, d, generator=generator, dtype=torch.float64)  # (C, d)
    centres = options["separation"] * directions / directions.norm(dim=1, keepdim=True)  # (C, d)
    counts = torch.tensor(_class_counts(n, C, options["imbalance"]))  # (C,)
    arrays: _Arrays = {}
    for split in SPLITS:  # drawn in this order from one generator: each split is fixed by the seed
        labels = torch.repeat_interleave(torch.arange(C), counts)  # (n,)
        labels = labels[torch.randperm(n, generator=generator)]  # (n,)
        noise = torch.randn(n, d, generator=generator, dtype=torch.float64)  # (n, d)
        arrays[split] = ((centres[labels] + noise).to(torch.float32), labels)
    return arrays, C


def _modadd(options: dict[str, Any]) -> tuple[_Arrays, int]:
    p, fraction = options["p"], options["train_fraction"]
    if p > 4096:
        raise InputError(f"dataset modadd: p={p} gives {p * p} pairs; use p <= 4096")
    num_train = round(fraction * p * p)
    if not 0 < num_train < p * p:
        raise InputError(f"dataset modadd: train_fraction={fraction} leaves a split empty for p={p}")
    generator = torch.Generator().manual_seed(options["seed"])
    order = torch.randperm(p * p, generator=generator)  # (p², ) pair index a·p + b
    pairs = torch.stack([order // p, order % p], dim=1)  # (p², 2) int64 (a, b)
    labels = pairs.sum(dim=1) % p  # (p²,)
    return {
        "train": (pairs[:num_train], labels[:num_train]),
        "test": (pairs[num_train:], labels[num_train:]),
    }, p


_BUILDERS: dict[str, Callable[[dict[str, Any]], tuple[_Arrays, int]]] = {
    "digits": _digits,
    "gaussian": _gaussian,
    "modadd": _modadd,
}


# --- user files -----------------------------------------------------------------------------------------------


def _file_keys(path: Path) -> tuple[dict[str, Any], Any]:
    """All arrays of a user file by slash-separated key, and its declared num_classes (or None)."""
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
            return arrays, arrays.pop("num_classes", None)
        arrays = {}
        with h5py.File(path, "r") as handle:
            handle.visititems(
                lambda k, v: arrays.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None
            )
            declared = handle.attrs.get("num_classes", arrays.pop("num_classes", None))
        return arrays, declared
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise InputError(f"{path}: cannot read as {path.suffix} ({error})") from None


def _file_splits(path: Path, arrays: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """split -> (inputs, labels) arrays: groups ``NAME/inputs``, ``NAME/labels``, else root arrays as train."""
    groups = sorted(
        {k.rsplit("/", 1)[0] for k in arrays if k.endswith(("/inputs", "/labels")) and k.count("/") == 1}
    )
    root = "inputs" in arrays or "labels" in arrays
    found = ", ".join(sorted(arrays)) or "no arrays"
    if groups and root:
        raise InputError(
            f"{path}: holds both root inputs/labels and split groups ({', '.join(groups)}); keep one"
        )
    prefixes = {g: f"{g}/" for g in groups} if groups else {"train": ""}
    for prefix in prefixes.values():
        if f"{prefix}inputs" not in arrays or f"{prefix}labels" not in arrays:
            raise InputError(
                f"{path}: needs arrays {prefix}inputs and {prefix}labels; it has: {found} "
                "(write arrays named inputs and labels, or groups train/inputs, train/labels, test/...)"
            )
    return {
        split: (arrays[f"{prefix}inputs"], arrays[f"{prefix}labels"]) for split, prefix in prefixes.items()
    }


def _checked_pair(path: Path, split: str, inputs: Any, labels: Any) -> tuple[Tensor, Tensor]:
    where = f"{path} [{split}]"
    if labels.dtype == np.bool_ or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{where}: labels must be integers, found dtype {labels.dtype}")
    if labels.ndim != 1 or inputs.ndim < 1 or len(inputs) != len(labels) or len(labels) == 0:
        raise InputError(
            f"{where}: inputs {inputs.shape} and labels {labels.shape} must be (N, ...) and (N,), N>0"
        )
    if labels.min() < 0:
        raise InputError(f"{where}: labels hold {int((labels < 0).sum())} negative values; use 0..C-1")
    if np.issubdtype(inputs.dtype, np.integer):
        return torch.from_numpy(inputs.astype(np.int64)), torch.from_numpy(labels.astype(np.int64))
    if not (np.issubdtype(inputs.dtype, np.floating) or inputs.dtype == np.bool_):
        raise InputError(f"{where}: inputs must be numbers, found dtype {inputs.dtype}")
    return torch.from_numpy(inputs.astype(np.float32)), torch.from_numpy(labels.astype(np.int64))


def _user_file(path_text: str, options: dict[str, Any]) -> tuple[_Arrays, int, str]:
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise InputError(f"{path_text}: no such file")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if options["sha256"] is not None and options["sha256"] != digest.hexdigest():
        raise InputError(f"{path}: contents changed since the spec was written (sha256 differs)")
    arrays, declared = _file_keys(path)
    splits = {s: _checked_pair(path, s, x, y) for s, (x, y) in _file_splits(path, arrays).items()}
    largest = max(int(y.max()) for _, y in splits.values())
    try:
        num_classes = largest + 1 if declared is None else int(np.asarray(declared).item())
    except (TypeError, ValueError):
        raise InputError(f"{path}: num_classes must be one integer, got {declared!r}") from None
    if num_classes <= largest:
        raise InputError(f"{path}: num_classes={num_classes} but labels reach {largest}")
    return splits, num_classes, _canonical(str(path), {"sha256": digest.hexdigest()})


# --- public API ---------------------------------------------------------------------------------------------


def _load_all(spec: str) -> tuple[str, _Arrays, int, str]:
    """(name, arrays by split, num_classes, canonical spec) for any spec."""
    kind, label, option_text = _split_spec(spec)
    options = _parse_options(kind, label, option_text)
    if kind == "file":
        arrays, num_classes, canonical = _user_file(label, options)
        return Path(label).name, arrays, num_classes, canonical
    arrays, num_classes = _BUILDERS[kind](options)
    return kind, arrays, num_classes, _canonical(kind, options)


def load_dataset(spec: str, split: str = "train") -> ArrayDataset:
    """One split of a dataset from a spec such as ``digits``, ``modadd:p=97,seed=1`` or ``data.h5``.

    Unknown names, options, values and splits raise InputError listing what is accepted.
    """
    name, arrays, num_classes, canonical = _load_all(spec)
    if split not in arrays:
        raise InputError(f"dataset {spec}: no split {split!r}; available splits: {', '.join(arrays)}")
    inputs, labels = arrays[split]
    return ArrayDataset(name, split, inputs, labels, num_classes, canonical, tuple(inputs.shape[1:]))


def dataset_splits(spec: str) -> list[str]:
    """Names of the splits a dataset spec offers (built-ins: train, test; files: their groups, or train)."""
    kind, label, option_text = _split_spec(spec)
    if kind != "file":
        _parse_options(kind, label, option_text)
        return list(SPLITS)
    return list(_load_all(spec)[1])
