"""`track`: a whole training trajectory — many checkpoints measured, their class-level metrics batched.

Checkpoints are ordered by the step/epoch they record, else by the number in their names
(``epoch_4.pt`` → 4, see :func:`step_from_name`), else by a natural sort of their names. Each
checkpoint's features come from ``data`` (extracted through the cache), or from a dump beside it with
the same stem (``epoch_0010.pt`` + ``epoch_0010.h5``), or the inputs are dumps that hold their head.
The streaming passes are per checkpoint; the metrics of all checkpoints are computed together
(one batched SVD for NC1, one batched eigvalsh for every C×C Gram).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.core.progress import SilentTracker, Tracker
from nc_audit.io.checkpoints.load import read_step
from nc_audit.measurement.build import build_report
from nc_audit.measurement.collect import Collected, collect
from nc_audit.measurement.compute import batched_class_level
from nc_audit.measurement.discover import CHECKPOINT_SUFFIXES, discover, features_beside, natural_key
from nc_audit.measurement.gating import Gating
from nc_audit.measurement.layers import check_layers_source, measure_source_layers
from nc_audit.measurement.options import MeasureOptions
from nc_audit.measurement.resolve import DUMP_SUFFIXES
from nc_audit.measurement.run_folders import distinct_labels, drop_duplicates, trainer_step
from nc_audit.report.model import Report, Trajectory

#: A step in a file name: epoch_4, step-100, iter3, ckpt_7, checkpoint-1500, global_step=20 (Lightning's
#: "epoch=3-step=400" gives 400: a step beats an epoch); or a name that is a number alone ("1000.pt").
_NAMED_STEP = re.compile(
    r"(?:^|[^a-z])(step|global_step|iter|iteration|it|epoch|ckpt|checkpoint)[=_-]?(\d+)(?!\d)", re.I
)
_STEP_WORDS = ("step", "global_step", "iter", "iteration", "it")


def step_from_name(path: Path) -> int | None:
    """The step a checkpoint's file name states, or None (a name like ``resnet50.pt`` states none)."""
    stem = path.name.split(".")[0]
    if stem.isdigit():
        return int(stem)
    found = [(word.lower(), int(number)) for word, number in _NAMED_STEP.findall(stem)]
    steps = [number for word, number in found if word in _STEP_WORDS]
    return steps[-1] if steps else (found[-1][1] if found else None)


def order_by_step(paths: list[Path]) -> list[tuple[Path, int | None]]:
    """Checkpoints with their step, ordered by it (natural name order breaks ties / fills gaps). The step is
    the one the file records, else the one its name states (``epoch_4.pt`` → 4)."""
    stepped = []
    for path in paths:
        step = trainer_step(path)  # a Trainer checkpoint folder's trainer_state.json
        if step is None and not path.is_dir():
            step = read_step(path) if path.suffix.lower() in CHECKPOINT_SUFFIXES else _dump_step(path)
        named = step_from_name(path) if step_from_name(path) is not None else step_from_name(path.parent)
        stepped.append((path, step if step is not None else named))
    if all(step is not None for _, step in stepped):
        return sorted(stepped, key=lambda item: (item[1], natural_key(item[0])))
    return sorted(stepped, key=lambda item: natural_key(item[0]))


def _dump_step(path: Path) -> int | None:
    from nc_audit.io.dumps.reader import read_attrs

    value = read_attrs(path).get("step")
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def measure_trajectory(
    inputs: list[Path],
    options: MeasureOptions | None = None,
    tracker: Tracker | None = None,
    *,
    gate: str = "last",
    **changes: Any,
) -> Trajectory:
    """Reports of every checkpoint in ``inputs`` (files or folders), in training order, gated. The options
    are those of ``measure`` (:class:`MeasureOptions`, as one object or by name); ``features`` is found
    per checkpoint. ``fail_on``, ``baseline`` and ``tolerance`` are held against the checkpoints that
    ``gate`` chooses (last | best | all, as ``track --gate``: :func:`nc_audit.gating.gate.gate`);
    ``trajectory.passed`` is the verdict."""
    options = MeasureOptions.of(options, **changes)
    gating = Gating.of(options)  # a typo or a bad baseline fails before anything is measured
    tracker = tracker or SilentTracker()
    ordered = order_by_step(discover(inputs))
    if options.layers:  # the names checked on the first checkpoint's model, before anything is measured
        first = ordered[0][0] if ordered else None
        check_layers_source(options, first if first is not None and not _is_dump(first) else None)
    labels = distinct_labels([path for path, _ in ordered])
    beside = None if options.data is not None else features_beside
    ordered, duplicate_notes = drop_duplicates(ordered, labels, beside)
    collected: list[Collected] = []
    with tracker.stage("track", len(ordered), unit="checkpoints") as advance:
        for path, _ in ordered:
            is_dump = path.suffix.lower() in DUMP_SUFFIXES
            features = None if (is_dump or options.data is not None) else features_beside(path)
            if not is_dump and options.data is None and features is None:
                raise InputError(
                    f"{path}: no features: pass --data NAME, or put {path.with_suffix('.h5').name} beside it"
                )
            collected.append(collect(path, replace(options, features=features), tracker))
            advance(1)
    _check_compatible(collected, [path for path, _ in ordered])
    metrics, routes, information = batched_class_level(
        [(c.stats, c.inputs.head, c.counter) for c in collected],
        [c.nc1 for c in collected],
        options.class_route,
        options.class_budget_bytes,
    )
    reports: list[Report] = []
    for (path, step), item, values, info in zip(ordered, collected, metrics, information, strict=True):
        report = build_report(item, values, (routes, info))
        if options.layers:  # collapse across depth, per checkpoint (measurement/layers.py)
            report = measure_source_layers(path, options, report)
        notes = (*report.notes, duplicate_notes[path]) if path in duplicate_notes else report.notes
        reports.append(report.changed(step=step, label=labels[path], notes=notes))
    return gating(Trajectory(tuple(reports)), gate)


def _is_dump(path: Path) -> bool:
    return path.suffix.lower() in DUMP_SUFFIXES


def _check_compatible(collected: list[Collected], paths: list[Path]) -> None:
    """One trajectory = one architecture: same class count, feature dimension and present classes."""
    first = collected[0]
    for item, path in zip(collected[1:], paths[1:], strict=True):
        if item.inputs.head.num_classes != first.inputs.head.num_classes:
            raise InputError(
                f"{path}: {item.inputs.head.num_classes} classes, but {paths[0]} has "
                f"{first.inputs.head.num_classes}; a trajectory needs one architecture"
            )
        if item.inputs.head.feature_dim != first.inputs.head.feature_dim:
            raise InputError(
                f"{path}: feature dimension {item.inputs.head.feature_dim}, but {paths[0]} has "
                f"{first.inputs.head.feature_dim}; a trajectory needs one architecture"
            )
        if not bool((item.stats.present == first.stats.present).all()):
            raise InputError(
                f"{path}: measured on other classes than {paths[0]}; use the same data for every checkpoint"
            )
