"""`track --task next-token`: a trajectory of causal language model checkpoints measured on one corpus.

Each checkpoint is a causal LM folder (``config.json`` beside its weights and tokenizer, as
``save_pretrained`` writes it); a folder that is not one but holds such folders (a Trainer's
``output_dir`` with ``checkpoint-500/``, ``checkpoint-1000/``) stands for all of them. They are ordered
by the step their names state (``checkpoint-500`` → 500, :func:`step_from_name`), else by name. Every
checkpoint's features are extracted through the next-token cache (:mod:`next_token_cache`) exactly as
``measure --task next-token`` does; the class-level metrics of all checkpoints are computed together.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.core.progress import SilentTracker, Tracker
from nc_audit.measurement.build import build_report
from nc_audit.measurement.collect import Collected, collect
from nc_audit.measurement.compute import batched_class_level
from nc_audit.measurement.gating import Gating
from nc_audit.measurement.next_token_folders import language_model_folders, order_folders
from nc_audit.measurement.options import MeasureOptions
from nc_audit.report.model import Trajectory


def _check_compatible(collected: list[Collected], folders: list[Path]) -> None:
    """One trajectory = one vocabulary and width, measured on the same classes (same corpus and tokenizer)."""
    first = collected[0]
    for item, folder in zip(collected[1:], folders[1:], strict=True):
        head, head0 = item.inputs.head, first.inputs.head
        if (head.num_classes, head.feature_dim) != (head0.num_classes, head0.feature_dim):
            raise InputError(
                f"{folder}: vocabulary {head.num_classes} x width {head.feature_dim}, but {folders[0]} has "
                f"{head0.num_classes} x {head0.feature_dim}; a trajectory needs one architecture"
            )
        if not bool((item.stats.present == first.stats.present).all()):
            raise InputError(
                f"{folder}: its next tokens are other classes than {folders[0]}'s; a trajectory needs one "
                "corpus and one tokenizer"
            )


def measure_next_token_trajectory(
    inputs: list[Path],
    options: MeasureOptions | None = None,
    tracker: Tracker | None = None,
    *,
    gate: str = "last",
    **changes: Any,
) -> Trajectory:
    """Reports of every causal LM checkpoint in ``inputs`` on the corpus ``options.data``, in step order,
    gated like :func:`nc_audit.measurement.trajectory.measure_trajectory` (``fail_on``, ``baseline``,
    ``tolerance`` against the checkpoints ``gate`` chooses). The options are those of ``measure --task
    next-token``."""
    options = replace(MeasureOptions.of(options, **changes), task="next-token", features=None)
    if options.data is None:
        raise InputError("--task next-token needs --data CORPUS (.txt, .jsonl or token ids .npy)")
    gating = Gating.of(options)  # a typo or a bad baseline fails before anything is measured
    shown: Tracker | SilentTracker = tracker or SilentTracker()
    ordered = order_folders(language_model_folders(inputs))
    collected: list[Collected] = []
    with shown.stage("track", len(ordered), unit="checkpoints") as advance:
        for folder, _ in ordered:
            collected.append(collect(folder, options, shown))
            advance(1)
    folders = [folder for folder, _ in ordered]
    _check_compatible(collected, folders)
    metrics, routes, information = batched_class_level(
        [(c.stats, c.inputs.head, c.counter) for c in collected],
        [c.nc1 for c in collected],
        options.class_route,
        options.class_budget_bytes,
    )
    reports = tuple(
        build_report(item, values, (routes, info)).changed(step=step, label=folder.name)
        for (folder, step), item, values, info in zip(ordered, collected, metrics, information, strict=True)
    )
    return gating(Trajectory(reports), gate)
