"""Offline datasets, deterministic by seed: built-ins (digits, gaussian, modadd) and user .npz / HDF5 arrays.

A spec is ``NAME[:key=value,...]`` or a path to a user file. ``ArrayDataset.spec`` is its canonical form
(sorted keys, defaults filled in; for files the absolute path and the content's sha256), a cache key.

A user file holds ``labels`` and the model's inputs, at its root or in split groups (``train/``,
``test/``, ...). The inputs are one array ``inputs`` (passed to the model positionally), or several
named arrays (``input_ids``, ``attention_mask``, ``token_type_ids``, ``pixel_values``, ...: every
other array of the group) passed as keyword arguments. An nc-audit feature dump is accepted as data
too: its ``features`` are the inputs (what a ``finetune --features`` adapter takes), its ``logits`` and
``head`` are ignored. A file without split groups is whichever split is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

from nc_audit.core.errors import InputError, did_you_mean
from nc_audit.core.inputs import Inputs, describe, num_rows, take
from nc_audit.io.data.specs import USER_SUFFIXES, file_spec
from nc_audit.io.data.stream_spec import parse_stream_spec
from nc_audit.io.data.stream_splits import source_splits
from nc_audit.io.data.user_files import canonical, nearby_file, user_file
from nc_audit.io.dumps.reader import dump_splits
from nc_audit.io.guards.files import is_pseudo_file

BUILTIN_DATASETS: tuple[str, ...] = ("digits", "gaussian", "modadd")
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
    inputs: Inputs  # (N, *input_shape), or named arrays (N, ...) passed as keyword arguments
    labels: Tensor  # (N,) int64
    num_classes: int
    spec: str
    input_shape: tuple[int, ...]  # of the one positional array; () for named arrays

    def __len__(self) -> int:
        """Number of samples N."""
        return int(self.labels.shape[0])

    def batches(self, batch_size: int) -> Iterator[tuple[Inputs, Tensor]]:
        """(inputs, labels) in order, ``batch_size`` at a time (the last batch may be smaller)."""
        if batch_size < 1:
            raise InputError(f"batch size must be a positive integer, got {batch_size}")
        for start in range(0, len(self), batch_size):
            rows = slice(start, start + batch_size)
            yield take(self.inputs, rows), self.labels[rows]


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


def _split_spec(spec: str) -> tuple[str, str, str]:
    """(kind, name or path, option text); kind is a built-in name or "file"."""
    spec = spec.strip()
    streamed = parse_stream_spec(spec)
    if streamed is not None:
        what = {"images": "an image folder", "hf": "a datasets folder", "table": "a table"}.get(
            streamed.kind, "a module:callable"
        )
        raise InputError(
            f"--data {streamed.source}: {what} is streamed by measure, extract and track only; this command "
            "takes a built-in dataset or an .npz/.h5 file of arrays (write one with extract's features, or "
            "np.savez)"
        )
    named = file_spec(spec)
    if named is not None:
        return "file", *named
    name, _, option_text = spec.partition(":")
    if name not in BUILTIN_DATASETS:
        hint = did_you_mean(name, BUILTIN_DATASETS) or nearby_file(spec)
        raise InputError(
            f"unknown dataset {name!r};{hint} built-in datasets: {', '.join(BUILTIN_DATASETS)}, "
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


# --- built-in datasets --------------------------------------------------------------------------------------

_Arrays = dict[str, tuple[Inputs, Tensor]]  # split -> (inputs, labels)


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


# --- public API ---------------------------------------------------------------------------------------------


def _load_all(spec: str) -> tuple[str, _Arrays, int, str, bool]:
    """(name, arrays by split, num_classes, canonical spec, whether a file without split groups)."""
    kind, label, option_text = _split_spec(spec)
    options = _parse_options(kind, label, option_text)
    if kind == "file":
        arrays, num_classes, spec_text, root_only = user_file(label, options)
        return Path(label).name, arrays, num_classes, spec_text, root_only
    arrays, num_classes = _BUILDERS[kind](options)
    return kind, arrays, num_classes, canonical(kind, options), False


def load_dataset(spec: str, split: str = "train") -> ArrayDataset:
    """One split of a dataset from a spec such as ``digits``, ``modadd:p=97,seed=1`` or ``data.h5``.

    A file without split groups is the split asked for, whatever its name. Unknown names, options,
    values and splits raise InputError listing what is accepted.
    """
    name, arrays, num_classes, spec_text, root_only = _load_all(spec)
    if root_only:
        arrays = {split: arrays["train"]}
    if split not in arrays:
        raise InputError(
            f"dataset {spec}: no split {split!r};{did_you_mean(split, list(arrays))} "
            f"available splits: {', '.join(arrays)}"
        )
    inputs, labels = arrays[split]
    shape = () if isinstance(inputs, dict) else tuple(inputs.shape[1:])
    if num_rows(inputs) != len(labels):  # pragma: no cover - _checked_pair guarantees it
        raise InputError(f"dataset {spec} [{split}]: inputs {describe(inputs)} vs labels {len(labels)}")
    return ArrayDataset(name, split, inputs, labels, num_classes, spec_text, shape)


def dataset_splits(spec: str) -> list[str]:
    """Names of the splits a dataset spec offers (built-ins: train, test; files: their groups, or train)."""
    streamed = parse_stream_spec(spec)
    if streamed is not None:
        return source_splits(streamed)[0]
    kind, label, option_text = _split_spec(spec)
    if kind != "file":
        _parse_options(kind, label, option_text)
        return list(SPLITS)
    return list(_load_all(spec)[1])


def holds_split_groups(spec: str) -> bool:
    """Whether ``spec`` names splits of its own (built-ins, files with groups); a file of root arrays
    does not: it is whichever split is asked for."""
    streamed = parse_stream_spec(spec)
    if streamed is not None:
        return source_splits(streamed)[1]
    kind, _, _ = _split_spec(spec)
    return kind != "file" or not _load_all(spec)[4]


def holds_features(spec: str) -> bool:
    """Whether ``spec`` is a feature dump (a file whose inputs are ``features``: what an adapter takes)."""
    kind, label, _ = _split_spec(spec)
    if kind != "file" or not label.lower().endswith((".h5", ".hdf5")):
        return False
    path = Path(label).expanduser()
    if not path.is_file() or is_pseudo_file(path):  # a FIFO is never opened (it would block)
        return False
    try:
        with h5py.File(path, "r") as handle:  # links are looked at, not followed (io/hdf5/guard.py)
            return handle.id.links.exists(b"features") or bool(dump_splits(handle))
    except (OSError, InputError):
        return False


def splits_for_measure(spec: str, split: str | None) -> list[str]:
    """The splits to extract from ``spec`` when measuring ``split`` (None: the default, train).

    A dataset with named splits gives all of them (class means come from train, Papyan's protocol),
    and a ``split`` it lacks is an InputError naming the dataset; a file without split groups is the
    split asked for, so it gives ``[split]``.
    """
    streamed = parse_stream_spec(spec)
    kind, label, option_text = ("stream", spec, "") if streamed is not None else _split_spec(spec)
    if streamed is not None:
        available, own = source_splits(streamed)
        if not own:
            return [split or "train"]
    elif kind == "file":
        _, arrays, _, _, root_only = _load_all(spec)
        if root_only:
            return [split or "train"]
        available = list(arrays)
    else:
        _parse_options(kind, label, option_text)
        available = list(SPLITS)
    if split is not None and split not in available:
        raise InputError(
            f"--split {split}: {label} has no split {split!r};{did_you_mean(split, available)} "
            f"its splits: {', '.join(available)}"
        )
    return available


def check_two_classes(labels: Tensor, where: str) -> None:
    """InputError naming ``where`` when the labels hold fewer than two classes (no Neural Collapse metric
    is defined for them)."""
    present = labels.unique()
    if present.numel() < 2:
        shown = f"every label is {int(present[0])}" if present.numel() else "no labels"
        raise InputError(f"{where}: {shown}; Neural Collapse metrics need samples of at least 2 classes")
