"""From a model and a dataset to a feature dump: stream batches through the model, keep the head's input.

The model comes from :func:`nc_audit.models.loading.load_model` (the checkpoint's own architecture
record, or a user factory); the head's input is read by a forward pre-hook (:mod:`nc_audit.models.hooks`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from nc_audit.core.errors import InputError, did_you_mean
from nc_audit.core.inputs import describe, to_device
from nc_audit.core.progress import SilentTracker, Tracker
from nc_audit.io.checkpoints.heads import APPLIED_ATTR
from nc_audit.io.data.datasets import (
    ArrayDataset,
    dataset_splits,
    holds_features,
    holds_split_groups,
    load_dataset,
)
from nc_audit.io.data.stream_spec import parse_stream_spec
from nc_audit.io.dumps.writer import write_dump
from nc_audit.models.head_param import ParameterHead
from nc_audit.models.hooks import find_head_module, forward_with_features
from nc_audit.models.loading import LoadedModel
from nc_audit.models.preflight import check_before_forward
from nc_audit.models.spec import NO_MODEL, ModelSpec

#: The dump a ``finetune --features`` run writes with the adapted features (see nc_audit.train.loop).
ADAPTED_DUMP_NAME = "final_features.h5"


def check_adapter_inputs(loaded: LoadedModel, dataset: ArrayDataset, data: str) -> None:
    """A feature adapter (``finetune --features``) takes the backbone's features (N, d): other inputs
    are refused with a message naming the dumps that fit."""
    if loaded.kind != "adapter":
        return
    d = int(loaded.architecture["config"]["feature_dim"])  # type: ignore[index]  # kind "adapter" is read from this record
    inputs = dataset.inputs
    shape_fits = not isinstance(inputs, dict) and inputs.dim() == 2 and inputs.shape[1] == d
    if not (
        shape_fits and not isinstance(inputs, dict) and inputs.is_floating_point() and holds_features(data)
    ):
        raise InputError(
            f"{loaded.checkpoint.path}: a feature adapter (finetune --features) takes the backbone's "
            f"features (N, {d}) from a feature dump, but {data} [{dataset.split}] holds inputs "
            f"{describe(inputs)}; pass --data "
            f"with the backbone's feature dump, or measure the run's {ADAPTED_DUMP_NAME}"
        )


def extract(
    checkpoint_path: Path | str,
    data: str,
    out: Path | str,
    *,
    splits: list[str] | None = None,
    model: ModelSpec = NO_MODEL,
    batch_size: int = 512,
    tracker: Tracker | None = None,
) -> Path:
    """Write the dump of ``data``'s splits (default: all) through the checkpoint's model (``model``: the
    factory, its arguments, the head and the device; default: the checkpoint's own, device auto) to ``out``.

    Schema (docs/DESIGN.md): /SPLIT/features (float32), /SPLIT/labels (int64), /SPLIT/logits, /head/weight,
    /head/bias, root attributes format, checkpoint_sha256, checkpoint_path, dataset, and ``notes`` (a
    JSON list: what loading the model did, e.g. prefixes stripped). Written under a temporary name and
    renamed when complete. A file without split groups is written as each split asked for.
    """
    tracker = tracker or SilentTracker()
    streamed = parse_stream_spec(data)
    if streamed is not None:  # an image folder, a table, a datasets folder, the user's callable
        from nc_audit.models.extract_stream import extract_stream

        wanted_splits = splits or dataset_splits(data)
        return extract_stream(
            checkpoint_path, streamed, out, splits=wanted_splits, model=model, tracker=tracker
        )
    available = dataset_splits(data)
    wanted = splits or available
    unknown = [name for name in wanted if name not in available]
    if unknown and holds_split_groups(data):
        hint = did_you_mean(unknown[0], available)
        raise InputError(
            f"--split {','.join(unknown)}: dataset {data} has splits {', '.join(available)};{hint}"
        )
    datasets = [load_dataset(data, name) for name in wanted]  # a file without groups is any split
    device = model.torch_device()
    loaded = model.load(checkpoint_path, datasets[0].num_classes)
    net = loaded.model.to(device)
    head_module = find_head_module(net, loaded.head_name)[1]
    for dataset in datasets:
        check_adapter_inputs(loaded, dataset, data)
        where = f"{data} [{dataset.split}]"
        top = int(dataset.labels.max()) if len(dataset) else -1
        if top >= head_module.out_features:
            raise InputError(
                f"{where}: labels go up to {top} but the model's head '{loaded.head_name}' has "
                f"{head_module.out_features} classes"
            )
        check_before_forward(net, dataset.inputs, loaded.head_name, where, device)  # a 2-row probe
    attrs = {
        "checkpoint_sha256": loaded.checkpoint.sha256,
        "checkpoint_path": str(loaded.checkpoint.path),
        "dataset": datasets[0].spec,
        "head": loaded.head_name,
        "notes": json.dumps(list(loaded.notes)),
    }
    if loaded.checkpoint.step is not None:
        attrs["step"] = str(loaded.checkpoint.step)
    if isinstance(head_module, ParameterHead):  # how the model applies it (the probe above saw it)
        attrs[APPLIED_ATTR] = head_module.normalisation()
    with write_dump(out, attrs) as writer, torch.inference_mode():
        writer.head(head_module.weight, head_module.bias, loaded.head_name)
        for dataset in datasets:
            split_writer = writer.split(
                dataset.split, len(dataset), head_module.in_features, head_module.out_features
            )
            with tracker.stage(f"extract {dataset.split}", len(dataset), unit="rows") as advance:
                for inputs, labels in dataset.batches(batch_size):
                    _, features = forward_with_features(net, to_device(inputs, device), loaded.head_name)
                    # the chosen head's own outputs (an inner --head differs from the model's output)
                    split_writer.append(features, labels, head_module(features))
                    advance(int(labels.shape[0]))
    return Path(out)
