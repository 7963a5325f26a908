"""Extract a feature dump from a streamed ``--data`` source (nc_audit.models.stream_sources) through a
DataLoader: ``workers`` processes read and decode while this one runs the model, a batch at a time, so
memory holds one batch per worker (never the whole dataset). Errors raised while reading an item (in a
worker or here) come back as one line naming the file; the labels of each batch are checked against
the head before its forward pass.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from nc_audit.core.errors import InputError, first_line
from nc_audit.core.inputs import to_device
from nc_audit.core.progress import SilentTracker, Tracker
from nc_audit.io.checkpoints.heads import APPLIED_ATTR
from nc_audit.io.data.stream_spec import StreamSpec
from nc_audit.io.dumps.writer import write_dump
from nc_audit.models.head_param import ParameterHead
from nc_audit.models.hooks import find_head_module, forward_with_features
from nc_audit.models.spec import NO_MODEL, ModelSpec
from nc_audit.models.stream_sources import Opened, dataset_len, open_source, split_item

#: Most bytes of decoded items in flight at once (the batch being run and those the workers prefetch).
BATCH_BUDGET_BYTES = 1 << 30
#: Items per batch when the budget allows it.
DEFAULT_BATCH = 64
#: Batches each DataLoader worker prepares ahead.
PREFETCH = 2


def batch_size_for(opened: Opened, workers: int, wanted: int = DEFAULT_BATCH) -> int:
    """Items per batch such that every batch in flight (1 + PREFETCH per worker) fits BATCH_BUDGET_BYTES
    (decided before anything is read; at least 1: one item is bounded by the image pixel limit)."""
    if not opened.item_bytes:
        return wanted
    in_flight = 1 + PREFETCH * workers
    return max(1, min(wanted, BATCH_BUDGET_BYTES // (opened.item_bytes * in_flight)))


@dataclass(frozen=True)
class Failure:
    """An item that could not be read: the one-line message (it crosses from a worker as data)."""

    message: str


class _Guarded(Dataset[Any]):
    """``dataset``'s items, or a :class:`Failure` for one that raised (nothing escapes a worker)."""

    def __init__(self, dataset: Dataset[Any], where: str) -> None:
        self.dataset, self.where = dataset, where

    def __len__(self) -> int:
        return dataset_len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except InputError as error:
            return Failure(str(error))
        except Exception as error:  # the user's own dataset may raise anything
            return Failure(f"{self.where}: item {index}: {type(error).__name__}: {first_line(error)}")


class _GuardedIterable(IterableDataset[Any]):
    def __init__(self, dataset: IterableDataset[Any], where: str) -> None:
        self.dataset, self.where = dataset, where

    def __len__(self) -> int:
        return dataset_len(self.dataset)

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self.dataset
        except InputError as error:
            yield Failure(str(error))
        except Exception as error:
            yield Failure(f"{self.where}: {type(error).__name__}: {first_line(error)}")


def _guarded_collate(collate: Callable[[list[Any]], Any]) -> Callable[[list[Any]], Any]:
    def run(batch: list[Any]) -> Any:
        failed = next((item for item in batch if isinstance(item, Failure)), None)
        if failed is not None:
            return failed
        try:
            return collate(batch)
        except InputError as error:
            return Failure(str(error))
        except Exception as error:  # e.g. images of different sizes without --data-arg size
            return Failure(f"cannot batch the items: {type(error).__name__}: {first_line(error)}")

    return run


def batches(opened: Opened, where: str, batch_size: int, workers: int) -> Iterator[tuple[Any, torch.Tensor]]:
    """(inputs, int64 labels) of one opened split, streamed; InputError for the first unreadable item."""
    if opened.loader is not None:  # the user's own DataLoader: its batches as they come
        try:
            for batch in opened.loader:
                inputs, labels = split_item(batch, where)
                yield inputs, torch.as_tensor(labels)
        except InputError:
            raise
        except Exception as error:
            raise InputError(
                f"{where}: reading a batch failed: {type(error).__name__}: {first_line(error)}"
            ) from None
        return
    assert opened.dataset is not None
    dataset: Dataset[Any] = (
        _GuardedIterable(opened.dataset, where)
        if isinstance(opened.dataset, IterableDataset)
        else _Guarded(opened.dataset, where)
    )
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_guarded_collate(opened.collate),
        shuffle=False,
        persistent_workers=False,
        prefetch_factor=PREFETCH if workers else None,
    )
    for batch in loader:
        if isinstance(batch, Failure):
            raise InputError(batch.message)
        inputs, labels = batch
        yield inputs, torch.as_tensor(labels).to(torch.int64).reshape(-1)


def extract_stream(
    checkpoint_path: Path | str,
    spec: StreamSpec,
    out: Path | str,
    *,
    splits: list[str],
    model: ModelSpec = NO_MODEL,
    batch_size: int = 64,
    tracker: Tracker | None = None,
) -> Path:
    """The dump of ``splits`` of the streamed source ``spec`` through the checkpoint's model (the schema
    of nc_audit.models.extract.extract)."""
    tracker = tracker or SilentTracker()
    device = model.torch_device()
    model_folder = Path(checkpoint_path) if Path(checkpoint_path).is_dir() else None
    opened = {split: open_source(spec, split, model_folder) for split in splits}
    first = opened[splits[0]]
    loaded = model.load(checkpoint_path, first.num_classes)
    net = loaded.model.to(device)
    head = find_head_module(net, loaded.head_name)[1]
    attrs = {
        "checkpoint_sha256": loaded.checkpoint.sha256,
        "checkpoint_path": str(loaded.checkpoint.path),
        "dataset": first.identity,
        "head": loaded.head_name,
        "notes": json.dumps(list(loaded.notes)),
    }
    if loaded.checkpoint.step is not None:
        attrs["step"] = str(loaded.checkpoint.step)
    if isinstance(head, ParameterHead):
        attrs[APPLIED_ATTR] = head.normalisation()
    with write_dump(out, attrs) as writer, torch.inference_mode():
        writer.head(head.weight, head.bias, loaded.head_name)
        for split in splits:
            where = f"{spec.source} [{split}]"
            source = opened[split]
            total = dataset_len(source.loader.dataset if source.loader is not None else source.dataset)  # type: ignore[arg-type]  # one of them is set
            split_writer = writer.split(split, total, head.in_features, head.out_features)
            seen = 0
            with tracker.stage(f"extract {split}", total, unit="rows") as advance:
                rows = batch_size_for(source, spec.workers, batch_size)
                for inputs, labels in batches(source, where, rows, spec.workers):
                    top = int(labels.max()) if labels.numel() else -1
                    if top >= head.out_features or (labels.numel() and int(labels.min()) < 0):
                        raise InputError(
                            f"{where}: labels go up to {top} but the model's head '{loaded.head_name}' has "
                            f"{head.out_features} classes"
                        )
                    _, features = forward_with_features(net, to_device(inputs, device), loaded.head_name)
                    split_writer.append(features, labels, head(features))
                    seen += int(labels.shape[0])
                    advance(int(labels.shape[0]))
            if seen != total:
                raise InputError(f"{where}: its length says {total} samples but {seen} were read")
    return Path(out)
