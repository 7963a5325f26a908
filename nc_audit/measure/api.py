"""`measure`: from a checkpoint and its features to a Report — the library's main entry point.

Two streaming passes over the dump (:mod:`nc_audit.measure.collect`), metrics from their results
(:mod:`nc_audit.measure.compute`), and a Report that names its conventions (:mod:`nc_audit.measure.build`).
Nothing here renders anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nc_audit.core.progress import Tracker
from nc_audit.measure.build import build_report
from nc_audit.measure.collect import collect
from nc_audit.measure.compute import batched_metrics
from nc_audit.measure.options import MeasureOptions
from nc_audit.report.model import Report


def measure(
    source: Path | str,
    options: MeasureOptions | None = None,
    *,
    tracker: Tracker | None = None,
    **changes: Any,
) -> Report:
    """Measure Neural Collapse and matrix information of one checkpoint (or a dump that holds its head).

    ``source`` is a checkpoint (with ``features=DUMP``, or ``data=NAME``: a dataset name or file,
    extracted on the fly into the feature cache and reused) or a dump with ``/head``. The options are
    the fields of :class:`MeasureOptions`, given as one object or by name (``measure("ckpt.pt",
    features="f.h5", split="test")``); ``tracker`` shows progress.
    """
    collected = collect(source, MeasureOptions.of(options, **changes), tracker)
    metrics = batched_metrics([(collected.stats, collected.inputs.head, collected.counter)], [collected.nc1])[
        0
    ]
    return build_report(collected, metrics)
