"""Collapse across depth (``--layers all|NAME,...``): the input of every selected layer measured as the
head's input is, in the same forward passes, on the split the report's class means come from.

The layers and the pooling: :mod:`nc_audit.models.layer_taps`; the passes and the memory budget:
:mod:`nc_audit.measurement.layer_passes`; the metrics: the kernels every measurement runs
(:func:`nc_audit.measurement.compute.batched_class_level`, layers of one width batched together), with
the model's head for the layers as wide as its input and a least-squares probe for the others
(:mod:`nc_audit.metrics.probe`). NC3 and NC4 are not part of a layer's result (they compare a head with
the features it classifies).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nc_audit.core.class_stats import ClassStats
from nc_audit.core.devices import resolve_device
from nc_audit.core.errors import InputError
from nc_audit.core.inputs import Inputs, to_device
from nc_audit.distributed import DistributedContext
from nc_audit.engine.accumulators import DecisionCounter
from nc_audit.io.checkpoints.load import Head
from nc_audit.measurement.compute import batched_class_level
from nc_audit.measurement.layer_passes import Batches, LayerFeatures, accumulate_layers
from nc_audit.measurement.options import MeasureOptions
from nc_audit.metrics.probe import least_squares_probe
from nc_audit.models.hooks import find_head_module, forward_with_features
from nc_audit.models.layer_taps import LayerTap, measurable, pool_layer_input, select_layers
from nc_audit.models.pooling import split_head
from nc_audit.report.model import LayerResult, Report

#: Rows per forward pass for a dataset held in memory.
BATCH_SIZE = 512


def _forward(
    model: nn.Module, head_name: str, names: list[str], everything: bool, notes: list[str]
) -> Callable[[Inputs], LayerFeatures]:
    """A function running one batch: pooled inputs of the measurable layers, the head's input last. The
    first batch decides which layers are measurable: with ``all`` the others are left out with a note,
    a named one is an InputError."""
    head_layer = split_head(head_name).name or head_name
    pool = split_head(head_name).pool
    kept: list[str] | None = None
    device = next((p.device for p in model.parameters()), torch.device("cpu"))

    def forward(inputs: Inputs) -> LayerFeatures:
        nonlocal kept
        inputs = to_device(inputs, device)
        with LayerTap(model, names) as tap:
            _, head_features = forward_with_features(model, inputs, head_name)
        rows = int(head_features.shape[0])
        if kept is None:
            kept = []
            for name in names:
                reason = measurable(name, tap.captured.get(name), tap.calls.get(name, 0), rows)
                if reason is None:
                    kept.append(name)
                elif everything:
                    notes.append(f"--layers all: {reason}; left out")
                else:
                    raise InputError(f"--layers {name!r}: {reason}")
            kept.sort(key=list(tap.captured).index)  # forward order
        found = {name: pool_layer_input(tap.captured[name], inputs, model, pool) for name in kept}
        found[head_layer] = head_features  # the head's input, as measure reads it
        return found

    return forward


def _probe_or_head(stats: ClassStats, head: Head, name: str) -> tuple[Head, str, float | None]:
    if stats.feature_dim == head.feature_dim:
        return head, "head", None
    probe = least_squares_probe(stats)
    return Head(f"{name} (probe)", probe.weight, probe.bias), "probe", probe.ridge


def layer_results(
    stats: Mapping[str, ClassStats], head: Head, options: MeasureOptions, kinds: Mapping[str, str]
) -> tuple[LayerResult, ...]:
    """Each layer's metrics (see the module docstring), in the order of ``stats``; layers of one width
    go through the batched kernels together; ``kinds``: each layer's module class name."""
    chosen = {name: _probe_or_head(layer, head, name) for name, layer in stats.items()}
    by_width: dict[int, list[str]] = {}
    for name, layer in stats.items():
        by_width.setdefault(layer.feature_dim, []).append(name)
    results: dict[str, LayerResult] = {}
    for width, names in by_width.items():
        items = []
        for name in names:
            layer, used = stats[name], chosen[name][0]
            # NC4 is not a layer metric: this empty counter only fills the kernel's slot
            counter = DecisionCounter(
                layer.class_means, layer.present.nonzero().flatten(), used.weight, None, 1
            )
            items.append((layer, used, counter))
        metrics = batched_class_level(items, None, options.class_route, options.class_budget_bytes)[0]
        for name, values in zip(names, metrics, strict=True):
            _, against, ridge = chosen[name]
            results[name] = LayerResult.of(name, kinds[name], width, against, values, ridge)
    return tuple(results[name] for name in stats)


def _measure(
    model: nn.Module,
    head_name: str,
    batches: Batches,
    num_classes: int,
    options: MeasureOptions,
    where: str,
    ctx: DistributedContext | None = None,
) -> tuple[tuple[LayerResult, ...], list[str]]:
    notes: list[str] = []
    everything, names = select_layers(model, options.layers, head_name)
    forward = _forward(model, head_name, names, everything, notes)
    device = resolve_device(options.device)
    with torch.inference_mode():
        found = accumulate_layers(
            batches, forward, num_classes, device, options.layers_budget_bytes, where, ctx
        )
    module = find_head_module(model, head_name)[1]
    head = Head(head_name, module.weight.detach().to(device, torch.float64), _bias(module, device))
    kinds = {name: type(model.get_submodule(split_head(name).name or name)).__name__ for name in found.stats}
    return layer_results(found.stats, head, options, kinds), notes


def _bias(module: Any, device: torch.device) -> torch.Tensor | None:
    bias = getattr(module, "bias", None)
    return None if bias is None else bias.detach().to(device, torch.float64)


def with_layers(report: Report, results: tuple[LayerResult, ...], notes: list[str]) -> Report:
    """``report`` with its layers, their rule in the conventions and the notes of leaving some out."""
    conventions = {
        **report.conventions,
        "layers": (
            "input of each layer on the means split, pooled as the head's input ((N, T, d): the head's --pool "
            "rule, else the mean over non-pad tokens; (N, ch, *spatial): mean over positions); MIR/HDR against "
            "the head where the width equals the head's input, else a least-squares probe (normal equations "
            "in float64, a ridge 1e-10*lambda_max where singular)"
        ),
    }
    return report.changed(layers=results, conventions=conventions, notes=(*report.notes, *notes))


def _means_split(report: Report, options: MeasureOptions) -> str:
    split = report.features.get("means_split")
    if not isinstance(split, str) or split == "all":
        return options.means_split or options.split or "train"
    return split


def _data_batches(source: Path | str, data: str, split: str) -> Batches:
    """Batches of ``split`` of ``--data``: a dataset held in memory, or a streamed source."""
    from nc_audit.io.data.datasets import load_dataset
    from nc_audit.io.data.stream_spec import parse_stream_spec

    streamed = parse_stream_spec(data)
    if streamed is None:
        dataset = load_dataset(data, split)
        return lambda: dataset.batches(BATCH_SIZE)
    from nc_audit.models.extract_stream import batch_size_for, batches
    from nc_audit.models.stream_sources import open_source

    folder = Path(source) if Path(source).is_dir() else None

    def streamed_batches() -> Iterable[tuple[Inputs, torch.Tensor]]:
        opened = open_source(streamed, split, folder)
        rows = batch_size_for(opened, streamed.workers)
        return batches(opened, f"{streamed.source} [{split}]", rows, streamed.workers)

    return streamed_batches


def check_layers_source(options: MeasureOptions, source: Path | str | None = None) -> None:
    """``--layers`` runs the model on its inputs: a classifier checkpoint with ``--data``; with ``source``,
    the layer names are checked against its model too, before anything is measured."""
    if options.data is None or options.task != "classification":
        raise InputError(
            "--layers runs the model on its inputs: give a classifier checkpoint with --data NAME|PATH "
            "(a feature dump holds the head's input only)"
        )
    if source is not None:
        loaded = options.model_spec("cpu").load(source)
        select_layers(loaded.model, options.layers, loaded.head_name)


def measure_source_layers(source: Path | str, options: MeasureOptions, report: Report) -> Report:
    """``report`` (of the checkpoint ``source`` measured on ``options.data``) with its layers."""
    check_layers_source(options)
    data = str(options.data)
    device = resolve_device(options.device)
    loaded = options.model_spec(str(device)).load(source, report.num_classes)
    model = loaded.model.to(device).eval()
    split = _means_split(report, options)
    batches = _data_batches(source, data, split)
    where = f"{data} [{split}]"
    ctx = DistributedContext.from_env(device)  # under torchrun the ranks share the batches
    results, notes = _measure(model, loaded.head_name, batches, loaded.num_classes, options, where, ctx)
    return with_layers(report, results, notes)


def measure_module_layers(
    model: nn.Module, loaders: Mapping[str | None, Any], options: MeasureOptions, report: Report
) -> Report:
    """``report`` (of ``measure(model, loader)``) with the layers of ``model`` on the means split's loader."""
    from nc_audit.measurement.modules import split_batch

    split = options.means_split or ("train" if "train" in loaders else options.split)
    loader = loaders[split] if split in loaders else next(iter(loaders.values()))
    head_name, head_module = find_head_module(model, options.head)

    def batches() -> Iterable[tuple[Inputs, torch.Tensor]]:
        for batch in loader:
            inputs, labels = split_batch(batch)
            if labels is None:
                raise InputError("measure(model, loader, layers=...): the batches carry no labels")
            yield inputs, torch.as_tensor(labels)

    was_training = model.training
    model.eval()
    try:
        results, notes = _measure(
            model, head_name, batches, int(head_module.out_features), options, "measure(model, loader)"
        )
    finally:
        model.train(was_training)
    return with_layers(report, results, notes)
