"""Open a streamed ``--data`` source (nc_audit.io.data.stream_spec) as a torch Dataset for one split,
with how its items become model inputs, its class count and its identity (the feature-cache key).

Image folders are decoded with Pillow (``size``/``mean``/``std``/``channels`` from ``--data-arg``, else
the Hugging Face model folder's own ``preprocessor_config.json``); tables are tokenized with the model
folder's own tokenizer; a ``module:callable`` is the user's own code, imported and called only because
the user named it on the command line (like ``--model``), with its ``--data-arg`` values read as JSON.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, default_collate

from nc_audit.core.errors import InputError, first_line
from nc_audit.io.checkpoints.load import file_sha256
from nc_audit.io.data import image_folder, tables
from nc_audit.io.data.stream_spec import READ_ONLY_KEYS, StreamSpec
from nc_audit.io.guards.files import load_json
from nc_audit.models.causal_lm import load_tokenizer
from nc_audit.models.factories import load_factory
from nc_audit.models.spec import parse_model_args

_IMAGE_KEYS = ("size", "mean", "std", "channels")
_TABLE_KEYS = ("text_column", "label_column", "max_length")


@dataclass(frozen=True)
class Opened:
    """One split of a source: ``dataset`` (or the user's own ``loader``), ``collate`` (a list of items to
    (inputs, labels)), its class count when known, and ``identity`` (what it is, content included)."""

    dataset: Dataset[Any] | None
    loader: DataLoader[Any] | None
    collate: Callable[[list[Any]], Any]
    num_classes: int | None
    identity: str
    item_bytes: int | None = None  # one decoded item (images: C × H × W float32), when known before reading


def _unknown(spec: StreamSpec, known: tuple[str, ...]) -> None:
    for key, _ in spec.args:
        if key not in known and key not in READ_ONLY_KEYS:
            raise InputError(
                f"--data {spec.source}: unknown --data-arg {key!r}; accepted: {', '.join(known)}, workers"
            )


def _floats(text: str, what: str, spec: StreamSpec) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise InputError(f"--data-arg {what}={text}: expected numbers separated by commas") from None
    if what == "std" and any(v <= 0 for v in values):
        raise InputError(f"--data-arg std={text}: every std must be positive")
    return values


def _transform(spec: StreamSpec, model_folder: Path | None) -> tuple[image_folder.Transform, str]:
    """The image transform from --data-arg, else the model folder's preprocessor_config.json."""
    config: dict[str, Any] = {}
    pre = model_folder / "preprocessor_config.json" if model_folder is not None else None
    if pre is not None and pre.is_file():
        loaded = load_json(pre, "preprocessor config")
        config = loaded if isinstance(loaded, dict) else {}
    size: tuple[int, int] | None = None
    if spec.arg("size"):
        parts = str(spec.arg("size")).lower().replace("x", ",").split(",")
        if not all(p.isdigit() and 0 < int(p) <= 8192 for p in parts) or len(parts) > 2:
            raise InputError(f"--data-arg size={spec.arg('size')}: expected N or HxW, each 1 to 8192")
        size = (int(parts[0]), int(parts[-1]))
    elif isinstance(config.get("size"), dict):
        s = config["size"]
        h, w = s.get("height", s.get("shortest_edge")), s.get("width", s.get("shortest_edge"))
        size = (int(h), int(w)) if isinstance(h, int) and isinstance(w, int) else None
    channels_text = spec.arg("channels", "3") or "3"
    if channels_text not in ("1", "3"):
        raise InputError(f"--data-arg channels={channels_text}: must be 1 or 3")
    channels = int(channels_text)
    default_mean = config.get("image_mean") if config.get("do_normalize", True) else None
    default_std = config.get("image_std") if config.get("do_normalize", True) else None
    mean = _floats(spec.arg("mean") or ",".join(map(str, default_mean or [0.0])), "mean", spec)
    std = _floats(spec.arg("std") or ",".join(map(str, default_std or [1.0])), "std", spec)
    for name, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, channels):
            raise InputError(f"--data-arg {name}: {len(values)} values for {channels} channels")
    mean, std = (mean * channels if len(mean) == 1 else mean), (std * channels if len(std) == 1 else std)
    transform = image_folder.Transform(size, channels, mean, std)
    return transform, f"size={size},channels={channels},mean={mean},std={std}"


def _images(spec: StreamSpec, split: str, model_folder: Path | None, keyword: bool) -> Opened:
    _unknown(spec, _IMAGE_KEYS)
    root = Path(spec.source).expanduser()
    splits = image_folder.splits_of(root)
    classes = [p.name for p in image_folder.class_folders(splits.get("train", next(iter(splits.values()))))]
    folder = splits[split] if split in splits else splits["train"]
    items = image_folder.list_images(folder, classes)
    transform, shown = _transform(spec, model_folder)
    digest = image_folder.content_digest(items, folder, classes)

    def collate(batch: list[Any]) -> Any:
        inputs, labels = default_collate(batch)
        return ({"pixel_values": inputs} if keyword else inputs), labels

    dataset = image_folder.ImageFolderDataset(items, transform)
    height, width = transform.size or (image_folder.declared_size(items[0][0]) if items else (0, 0))
    item_bytes = transform.channels * height * width * 4  # float32
    identity = f"{spec.identity}[{split}]|{shown}|sha256={digest}"
    return Opened(dataset, None, collate, len(classes), identity, item_bytes)


def _tables(spec: StreamSpec, split: str, model_folder: Path | None) -> Opened:
    _unknown(spec, _TABLE_KEYS)
    text, label = spec.arg("text_column", "text") or "text", spec.arg("label_column", "label") or "label"
    path = Path(spec.source).expanduser()
    dataset: Dataset[Any]
    if spec.kind == "hf":
        folders = tables.hf_splits(path)
        folder = folders[split] if split in folders else folders.get("train", next(iter(folders.values())))
        table = tables.hf_table(folder, path, text, label, f"{path} [{split}]")
        dataset, num_classes, digest = table, table.labels.num_classes, tables.hf_digest(path)
    else:
        opened = (
            tables.parquet_table(path, text, label)
            if path.suffix.lower() == ".parquet"
            else tables.jsonl_table(path, text, label)
        )
        dataset, num_classes, digest = opened, opened.labels.num_classes, tables.file_digest([path])
    if model_folder is None:
        raise InputError(
            f"--data {spec.source}: text is tokenized with the model folder's own tokenizer; measure a "
            "Hugging Face model folder (or pass token ids in an .npz)"
        )
    tokenizer = load_tokenizer(model_folder)
    max_length_text = spec.arg("max_length", "512") or "512"
    if not max_length_text.isdigit() or not 0 < int(max_length_text) <= 1_000_000:
        raise InputError(f"--data-arg max_length={max_length_text}: expected a positive integer")
    max_length = int(max_length_text)

    def collate(batch: list[Any]) -> Any:
        texts = [row[0] for row in batch]
        encoded = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return dict(encoded), torch.tensor([row[1] for row in batch], dtype=torch.int64)

    tokens = hashlib.sha256(
        "".join(f"{p.name}{file_sha256(p)}" for p in sorted(model_folder.glob("tokenizer*"))).encode()
    ).hexdigest()
    identity = f"{spec.identity}[{split}]|max_length={max_length}|sha256={digest}|tokenizer={tokens}"
    return Opened(dataset, None, collate, num_classes, identity)


def split_item(item: Any, where: str) -> tuple[Any, Any]:
    """(inputs, labels) of an item or batch: a pair, or a dict whose ``label``/``labels`` is the label."""
    if isinstance(item, dict):
        key = "labels" if "labels" in item else "label" if "label" in item else None
        if key is None:
            raise InputError(
                f"{where}: a dict item without 'label' or 'labels' (keys: {', '.join(map(str, item))[:200]})"
            )
        rest = {k: v for k, v in item.items() if k != key}
        return (rest["inputs"] if set(rest) == {"inputs"} else rest), item[key]
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return item[0], item[1]
    raise InputError(
        f"{where}: items must be (inputs, label) pairs or dicts with a 'label', got {type(item).__name__}"
    )


def _source_file(function: Any) -> Path | None:
    """The file that defines the user's callable (its content is part of the cache key), if any."""
    try:
        path = Path(inspect.getfile(inspect.unwrap(function)))
    except (TypeError, OSError):
        return None
    return path if path.suffix == ".py" and path.is_file() else None


def _callable(spec: StreamSpec, split: str) -> Opened:
    args = parse_model_args([f"{k}={v}" for k, v in spec.args if k not in READ_ONLY_KEYS])
    try:
        factory = load_factory(spec.source, args)  # the user's own module, named on their command line
    except InputError as error:
        raise InputError(str(error).replace("--model", "--data", 1)) from None
    function = factory.factory
    try:
        takes_split = "split" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        takes_split = False
    call_args = {**args, **({"split": split} if takes_split and "split" not in args else {})}
    try:
        made = function(**call_args)
    except Exception as error:  # the user's code may raise anything
        raise InputError(
            f"--data {spec.source}: calling it failed: {type(error).__name__}: {first_line(error)}"
        ) from None
    loader = made if isinstance(made, DataLoader) else None
    dataset = made.dataset if isinstance(made, DataLoader) else made
    if not isinstance(dataset, Dataset):
        raise InputError(
            f"--data {spec.source}: returned a {type(made).__name__}, not a torch Dataset or DataLoader"
        )
    try:
        len(dataset)  # type: ignore[arg-type]  # a Dataset without __len__ raises TypeError here
    except TypeError:
        raise InputError(
            f"--data {spec.source}: its dataset has no len(); nc-audit needs the number of samples"
        ) from None
    classes = getattr(dataset, "classes", None)
    count = len(classes) if isinstance(classes, (list, tuple)) else getattr(dataset, "num_classes", None)
    num_classes = count if isinstance(count, int) and count > 0 else None
    content = f"|sha256={file_sha256(source)}" if (source := _source_file(function)) is not None else ""
    where = f"--data {spec.source}"

    def collate(batch: list[Any]) -> Any:
        pairs = [split_item(item, where) for item in batch]
        return default_collate([p[0] for p in pairs]), torch.as_tensor(default_collate([p[1] for p in pairs]))

    identity = f"{spec.identity}[{split if takes_split else '*'}]{content}"
    return Opened(None if loader else dataset, loader, collate, num_classes, identity)


@lru_cache(maxsize=16)  # the cache key and the extraction open each split once
def open_source(spec: StreamSpec, split: str, model_folder: Path | None) -> Opened:
    """One split of ``spec`` (a source without splits is every split); ``model_folder``: the Hugging Face
    folder being measured (its tokenizer and preprocessor), or None."""
    if spec.kind == "images":
        return _images(spec, split, model_folder, keyword=model_folder is not None)
    if spec.kind in ("hf", "table"):
        return _tables(spec, split, model_folder)
    return _callable(spec, split)


def dataset_len(dataset: Dataset[Any] | IterableDataset[Any]) -> int:
    return len(dataset)  # type: ignore[arg-type]  # checked when opened


def data_identity(data: str, splits: list[str], checkpoint: Path) -> str:
    """What ``splits`` of the ``--data`` spec are, content included (the feature-cache key's data part):
    a built-in's or file's canonical spec, a streamed source's identity with its content digest."""
    from nc_audit.io.data.datasets import load_dataset
    from nc_audit.io.data.stream_spec import parse_stream_spec

    spec = parse_stream_spec(data)
    if spec is None:
        return load_dataset(data, splits[0]).spec
    folder = checkpoint if checkpoint.is_dir() else None
    return "; ".join(open_source(spec, split, folder).identity for split in splits)
