"""Collapse across depth over a training run (``track --layers``): the layer × checkpoint grid of one layer
metric that the console, Markdown and HTML tables render (report/layers_trajectory_render.py).

Rows are the measured layers in forward order (first seen over the records, so a layer that only later
checkpoints have still gets a row), each with its width and what its MIR/HDR are measured against
(head | probe); columns are checkpoints, named by step when known, else by their label; a cell without a
value (a checkpoint that lacks the layer, an undefined metric) is None. A grid may show at most
``limit`` checkpoints: then :func:`spread` picks them, evenly spread, first and last included. Names keep
the objects the (escaped) view holds: each renderer escapes them for its own context.
"""

from __future__ import annotations

from dataclasses import dataclass

from nc_audit.core.errors import InputError
from nc_audit.report.formats.view import raw_text
from nc_audit.report.model import LAYER_METRICS, LayerResult, Trajectory, record_label

#: The most checkpoint columns the console (and Markdown) table shows.
MAX_COLUMNS = 8


def spread(count: int, limit: int = MAX_COLUMNS) -> tuple[int, ...]:
    """``limit`` indices of ``range(count)`` evenly spread, always the first and the last (all of them when
    ``count <= limit``): index i of the pick is round(i·(count−1)/(limit−1)), in integers."""
    if count <= limit:
        return tuple(range(count))
    if limit < 2:
        raise ValueError("spread needs a limit of at least 2 to keep the first and the last")
    span, steps = count - 1, limit - 1
    return tuple((2 * i * span + steps) // (2 * steps) for i in range(limit))


@dataclass(frozen=True)
class LayerRow:
    """One layer: ``name`` and ``against`` as the view holds them (escape them), ``width``, and the metric
    of each shown checkpoint (None: none)."""

    name: str
    width: int
    against: str
    values: tuple[float | None, ...]


@dataclass(frozen=True)
class LayerGrid:
    """The grid of ``metric``: ``columns`` (the shown checkpoints' names), ``rows``, the metric's NC
    ``target``, and how many checkpoints are ``shown`` of the ``total``."""

    metric: str
    columns: tuple[str, ...]
    rows: tuple[LayerRow, ...]
    target: float | None
    total: int

    @property
    def shown(self) -> int:
        return len(self.columns)

    def caption(self, all_in: str = "the JSON report and --layers-plot") -> str:
        """What the table shows, in words; when checkpoints are left out, how many and where all are."""
        text = (
            f"{self.metric} of the input of each layer (forward order) at each checkpoint (step, else name)"
        )
        if self.shown < self.total:
            text += (
                f"; {self.shown} of {self.total} checkpoints shown, evenly spread, first and last "
                f"included; {all_in} hold all of them"
            )
        return text


def column_name(trajectory: Trajectory, index: int) -> str:
    """A checkpoint's column: its step when known, else its label (:func:`record_label`)."""
    record = trajectory.records[index]
    return str(record.step) if record.step is not None else record_label(record, index)


def layer_grid(trajectory: Trajectory, metric: str, limit: int | None = MAX_COLUMNS) -> LayerGrid | None:
    """The grid of ``metric`` over the checkpoints :func:`spread` picks (all when ``limit`` is None); None
    when no record holds a layer."""
    if metric not in LAYER_METRICS:
        raise InputError(f"--layers-metric {metric}: expected one of {', '.join(LAYER_METRICS)}")
    records = trajectory.records
    first: dict[str, LayerResult] = {}  # raw name → the layer where it is first seen
    for record in records:
        for layer in record.layers:
            first.setdefault(raw_text(layer.name), layer)
    if not first:
        return None
    picked = spread(len(records), limit) if limit is not None else tuple(range(len(records)))
    by_record = [{raw_text(layer.name): layer for layer in records[i].layers} for i in picked]
    rows = tuple(
        LayerRow(
            name=layer.name,
            width=layer.width,
            against=layer.against,
            values=tuple(
                found.metrics[metric] if (found := layers.get(key)) is not None else None
                for layers in by_record
            ),
        )
        for key, layer in first.items()
    )
    target = next((r.targets[metric] for r in records if r.targets.get(metric) is not None), None)
    columns = tuple(column_name(trajectory, i) for i in picked)
    return LayerGrid(metric=metric, columns=columns, rows=rows, target=target, total=len(records))
