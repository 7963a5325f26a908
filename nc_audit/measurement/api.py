"""`measure`: from a checkpoint, a module and its data, or arrays, to a Report — the library's main entry.

One pipeline (:mod:`nc_audit.measurement.pipeline`): two streaming passes (:mod:`nc_audit.measurement.collect`),
metrics from their results (:mod:`nc_audit.measurement.compute`), a Report that names its conventions
(:mod:`nc_audit.measurement.build`), then the checks of ``fail_on`` and ``baseline`` (the one gate,
:func:`nc_audit.gating.gate.gate`). A module's features and arrays are held in memory and read through
the same chunks as a dump's (no temporary file), so every path runs the same passes as the CLI.
Nothing here renders anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from nc_audit.core.progress import Tracker
from nc_audit.measurement.gating import Gating
from nc_audit.measurement.layers import check_layers_source, measure_module_layers, measure_source_layers
from nc_audit.measurement.memory import NO_FILE
from nc_audit.measurement.modules import array_splits, module_splits
from nc_audit.measurement.options import MeasureOptions
from nc_audit.measurement.pipeline import measure_memory, measure_source
from nc_audit.report.model import Report


def measure(
    source: Path | str | nn.Module,
    loader: Any = None,
    options: MeasureOptions | None = None,
    *,
    tracker: Tracker | None = None,
    **changes: Any,
) -> Report:
    """Measure Neural Collapse and matrix information of a classifier's last layer.

    ``source`` is a checkpoint (with ``features=DUMP``, or ``data=NAME``: a dataset name or file,
    extracted on the fly into the feature cache and reused), a dump with ``/head``, or an ``nn.Module``
    with ``loader``: an iterable of ``(inputs, labels)`` batches (or dicts holding ``labels``), or a dict
    of such loaders by split name (``{"train": ..., "test": ...}``, for ``split``/``means_split``).
    The options are the fields of :class:`MeasureOptions` — the CLI's, ``fail_on`` and ``baseline``
    included — given as one object or by name (``measure("ckpt.pt", features="f.h5", split="test",
    fail_on=["nc1<=0.5"])``); ``report.checks`` and ``report.passed`` hold the verdict. ``tracker``
    shows progress. ``layers="all"`` (or module names) adds ``report.layers``: collapse across depth
    (nc_audit.measurement.layers; a checkpoint needs ``data=``).
    """
    if isinstance(loader, MeasureOptions):  # measure(source, options): the positional form of before
        options, loader = loader, None
    options = MeasureOptions.of(options, **changes)
    gating = Gating.of(options)
    if not isinstance(source, nn.Module):
        if loader is not None:
            raise TypeError("a loader goes with a model (nn.Module); a checkpoint takes features= or data=")
        if options.layers:
            check_layers_source(options, source)  # before the head's measurement, not after it
        report = measure_source(source, options, tracker)
        if options.layers:
            report = measure_source_layers(source, options, report)
        return gating(report)
    if loader is None:
        raise TypeError("measure(model, loader): a model needs a loader of (inputs, labels) batches")
    loaders: dict[str | None, Any] = dict(loader) if isinstance(loader, Mapping) else {None: loader}
    head, splits = module_splits(source, loaders, options.head)
    origin = {**NO_FILE, "model": type(source).__name__}
    report = measure_memory("measure(model, loader)", splits, head, options, origin, tracker)
    if options.layers:
        report = measure_module_layers(source, loaders, options, report)
    return gating(report)


def measure_arrays(
    features: Any,
    labels: Any,
    head_weight: Any,
    head_bias: Any = None,
    options: MeasureOptions | None = None,
    *,
    tracker: Tracker | None = None,
    **changes: Any,
) -> Report:
    """Measure features (N, d) with their labels (N,) against a head W (C, d) and bias b (C,) or None —
    NumPy arrays or tensors, or dicts of features and labels by split name — with every option of
    :func:`measure`."""
    options = MeasureOptions.of(options, **changes)
    gating = Gating.of(options)
    head, splits = array_splits(features, labels, head_weight, head_bias)
    return gating(measure_memory("measure_arrays", splits, head, options, NO_FILE, tracker))
