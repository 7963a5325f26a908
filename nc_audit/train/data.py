"""Training data for fine-tuning: a dataset's inputs or a dump's cached features, few-shot subsets, order.

The train split is held in memory (it is shuffled every epoch); the test split is only ever read in
order, chunk by chunk, so a dump's test features stream from disk. A dump's train features are read
into memory up to MAX_TRAIN_BYTES (stored as float32); a bigger train split needs a few-shot subset
(``--train-samples-per-class``, which reads only the chosen rows) or a smaller dump.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from nc_audit.core.errors import InputError
from nc_audit.core.inputs import Inputs, take
from nc_audit.io.checkpoints.load import file_sha256
from nc_audit.io.data.datasets import check_two_classes, dataset_splits, load_dataset
from nc_audit.io.dumps.reader import SplitInfo, dump_splits, iter_chunks, open_dump, resolve_split
from nc_audit.io.hdf5.guard import dataset_at, read_small

#: Largest train split of a dump read into memory, in bytes of float32 features (2 GiB).
MAX_TRAIN_BYTES = 2 * 2**30
#: Rows per chunk when the test split or the train split is run through the model without gradients.
EVAL_CHUNK_ROWS = 4096
_PURPOSES = {"init": 0, "subset": 1, "order": 2}


def derived_seed(seed: int, purpose: str) -> int:
    """An independent 63-bit seed per purpose (model init, few-shot subset, data order) from one seed."""
    state = np.random.SeedSequence([seed, _PURPOSES[purpose]]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


class EvalSplit(Protocol):
    """A split read in order, in chunks of (inputs, labels); ``rows`` picks a half-open range (a shard)."""

    @property
    def num_samples(self) -> int: ...

    def chunks(self, rows: tuple[int, int]) -> Iterator[tuple[Inputs, Tensor]]: ...


@dataclass(frozen=True)
class MemorySplit:
    """A split held in memory: inputs (N, ...) and labels (N,)."""

    inputs: Inputs  # (N, ...), or named arrays passed as keyword arguments
    labels: Tensor

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    def chunks(self, rows: tuple[int, int]) -> Iterator[tuple[Inputs, Tensor]]:
        for begin in range(rows[0], rows[1], EVAL_CHUNK_ROWS):
            end = min(begin + EVAL_CHUNK_ROWS, rows[1])
            yield take(self.inputs, slice(begin, end)), self.labels[begin:end]


@dataclass(frozen=True)
class DumpSplit:
    """A split of a feature dump, streamed from disk in chunks."""

    info: SplitInfo

    @property
    def num_samples(self) -> int:
        return self.info.num_samples

    def chunks(self, rows: tuple[int, int]) -> Iterator[tuple[Tensor, Tensor]]:
        for features, labels in iter_chunks(self.info, EVAL_CHUNK_ROWS, rows):
            yield features.to(torch.float32), labels


@dataclass(frozen=True)
class TrainData:
    """The train split in memory (after any few-shot subset), the optional test split, and their origin."""

    train: MemorySplit
    test: EvalSplit | None
    spec: str  # canonical dataset spec, or the dump's path and sha256: what a resumed run must repeat
    subset: Tensor | None  # (K·C,) indices into the full train split, ascending; None: all of it


def stratified_subset(labels: Tensor, num_classes: int, per_class: int, seed: int) -> Tensor:
    """Seeded stratified sample: ``per_class`` indices of every class, ascending. (N,) -> (per_class·C,)."""
    generator = torch.Generator().manual_seed(derived_seed(seed, "subset"))
    chosen = []
    for c in range(num_classes):
        members = (labels == c).nonzero().flatten()  # (n_c,)
        if members.numel() < per_class:
            raise InputError(
                f"--train-samples-per-class {per_class}: class {c} has only {members.numel()} train samples"
            )
        chosen.append(members[torch.randperm(members.numel(), generator=generator)[:per_class]])
    return torch.cat(chosen).sort().values  # (per_class·C,)


def dataset_data(spec: str, num_classes: int, per_class: int | None, seed: int) -> TrainData:
    """Train (and test, when the dataset has one) splits of a dataset spec, for a head of C classes."""
    train = load_dataset(spec, "train")
    if train.num_classes > num_classes:
        raise InputError(
            f"dataset {spec} has {train.num_classes} classes but the head has only {num_classes} rows"
        )
    test = load_dataset(spec, "test") if "test" in dataset_splits(spec) else None
    inputs, labels = train.inputs, train.labels
    check_two_classes(labels, f"{spec} [train]")  # the metrics before and after need two classes
    subset = None
    if per_class is not None:
        subset = stratified_subset(labels, train.num_classes, per_class, seed)
        inputs, labels = take(inputs, subset), labels[subset]
    test_split = MemorySplit(test.inputs, test.labels) if test is not None else None
    return TrainData(MemorySplit(inputs, labels), test_split, train.spec, subset)


def _read_train_rows(info: SplitInfo, rows: np.ndarray | None) -> Tensor:
    """Train features as float32 (n, d): every row, or the ascending ``rows``; bounded by MAX_TRAIN_BYTES."""
    count = info.num_samples if rows is None else len(rows)
    size = count * info.feature_dim * max(4, np.dtype(info.feature_dtype).itemsize)  # as read, then float32
    if size > MAX_TRAIN_BYTES:
        raise InputError(
            f"{info.path}: {count} train rows × d={info.feature_dim} need {size / 2**30:.1f} GiB in memory "
            f"(limit {MAX_TRAIN_BYTES / 2**30:.0f} GiB); use --train-samples-per-class K or a smaller dump"
        )
    with open_dump(info.path) as handle:
        dataset = dataset_at(handle, f"{info.group()}/features", info.path)
        if dataset is None:  # the split was resolved from this file; it changed since
            raise InputError(f"{info.path}: cannot read the train features ({info.group()}/features is gone)")
        try:
            array = dataset[()] if rows is None else dataset[rows]
        except (OSError, TypeError) as error:
            raise InputError(f"{info.path}: cannot read the train features ({error})") from None
    features = torch.from_numpy(np.asarray(array, dtype=np.float32))  # (n, d)
    if not bool(torch.isfinite(features).all()):
        raise InputError(f"{info.path}: the train features hold NaN or Inf values")
    return features


def dump_data(path: Path, num_classes: int, per_class: int | None, seed: int) -> TrainData:
    """Train (in memory) and test (streamed, when the dump has it) splits of a feature dump."""
    info = resolve_split(path, None)
    with open_dump(path) as handle:
        stored = dataset_at(handle, f"{info.group()}/labels", path)
        labels = torch.from_numpy(
            np.asarray(read_small(stored, "labels", path, 2**31), dtype=np.int64)
        )  # (N,)
        has_test = info.split is not None and "test" in dump_splits(handle)
    bad = (labels < 0) | (labels >= num_classes)
    if bool(bad.any()):
        raise InputError(
            f"{path}: {int(bad.sum())} train labels lie outside 0..{num_classes - 1} (the head's classes)"
        )
    subset = None
    if per_class is not None:
        subset = stratified_subset(labels, num_classes, per_class, seed)
        labels = labels[subset]
    features = _read_train_rows(info, None if subset is None else subset.numpy())
    test = DumpSplit(resolve_split(path, "test")) if has_test else None
    spec = f"{Path(path).resolve()}:sha256={file_sha256(Path(path))}"
    return TrainData(MemorySplit(features, labels), test, spec, subset)


def dump_feature_dim(path: Path) -> int:
    """Feature dimension d of a dump's train split (to pick a checkpoint's head)."""
    return resolve_split(path, None).feature_dim
