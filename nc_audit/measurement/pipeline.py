"""One measurement pipeline: the streaming passes, then the class-level metrics, then the Report.

Every path of the library runs these same three steps — a checkpoint with its dump (``measure``, the CLI),
arrays (``measure_arrays``), a module with its loaders (``measure(model, loader)``), a training batch
(the Monitor and the callbacks): :func:`nc_audit.measurement.collect.run_passes` (the accumulators of
:mod:`nc_audit.engine`), :func:`nc_audit.measurement.compute.batched_class_level`, and
:func:`nc_audit.measurement.build.build_report` (the conventions and the notes). Features held in memory
are read through the same chunks as a dump's (:mod:`nc_audit.io.dumps.memory`): no temporary file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from nc_audit.core.devices import resolve_device
from nc_audit.core.progress import Tracker
from nc_audit.io.checkpoints.load import Head
from nc_audit.io.dumps.memory import MemoryRows
from nc_audit.measurement.build import build_report
from nc_audit.measurement.collect import Collected, collect, run_passes
from nc_audit.measurement.compute import batched_class_level
from nc_audit.measurement.memory import memory_inputs
from nc_audit.measurement.options import MeasureOptions
from nc_audit.report.model import Report


def report_of(
    collected: Collected, options: MeasureOptions, step: int | None = None, label: str | None = None
) -> Report:
    """The Report of one measurement's passes: its class-level metrics (routes and budget from
    ``options``), conventions and notes (``step`` and ``label``: see :func:`build_report`)."""
    metrics, routes, information = batched_class_level(
        [(collected.stats, collected.inputs.head, collected.counter)],
        [collected.nc1],
        options.class_route,
        options.class_budget_bytes,
    )
    return build_report(collected, metrics[0], (routes, information[0]), step=step, label=label)


def measure_source(source: Path | str, options: MeasureOptions, tracker: Tracker | None = None) -> Report:
    """The Report of a checkpoint with its features, or of a dump that holds its head."""
    return report_of(collect(source, options, tracker), options)


def measure_memory(
    where: str,
    splits: Mapping[str | None, MemoryRows],
    head: Head,
    options: MeasureOptions,
    origin: Mapping[str, Any],
    tracker: Tracker | None = None,
    *,
    step: int | None = None,
    label: str | None = None,
) -> Report:
    """The Report of splits held in memory (split name → rows; None: rows without a split name, like a
    dump's root-level /features) against ``head``: the same passes, metrics,
    conventions and notes as a dump holding these splits and this head. ``where`` names the rows in
    messages; ``origin`` is the report's ``checkpoint`` (its ``head`` is set from ``head``); ``step`` and
    ``label`` name a record of a trajectory."""
    options = replace(options, features=None, data=None, head=None)
    inputs = memory_inputs(where, splits, head, origin, options.split, options.means_split)
    collected = run_passes(inputs, options, resolve_device(options.device), tracker)
    return report_of(collected, options, step, label)
