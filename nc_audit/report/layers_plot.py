"""``track --layers ... --layers-plot PATH``: a layer × checkpoint heat map of one layer metric.

Rows are the measured layers in forward order (the head's input last), columns the checkpoints in
training order; the colour is the metric (NC1 by default, ``--layers-metric`` another of
:data:`nc_audit.report.model.LAYER_METRICS`) on a log scale for the metrics whose NC target is 0 and that
span decades (NC1, CDNV, HDR), else linear. Cells without a value (a layer a checkpoint lacks, an
undefined metric) stay blank. Layer and checkpoint names come from inputs: shown literally (control
characters escaped, no mathtext).
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure

from nc_audit.core.errors import InputError
from nc_audit.report.escape import visible
from nc_audit.report.figure_text import fit_text
from nc_audit.report.formats.view import raw_text
from nc_audit.report.layers_trajectory import layer_grid
from nc_audit.report.model import Trajectory, record_label
from nc_audit.report.plots import TICK_CHARS, save_figure

#: Metrics drawn on a log colour scale (positive, target 0, spanning decades across depth).
LOG_METRICS = ("nc1", "nc1_cdnv", "hdr")


def _tick(value: str) -> str:
    """A name as a tick label: control characters escaped, ``$`` escaped (ticks keep mathtext)."""
    return fit_text(visible(raw_text(value)), TICK_CHARS).replace("$", r"\$")


def layers_grid(trajectory: Trajectory, metric: str) -> tuple[list[str], list[str], list[list[float]]]:
    """(layer names, checkpoint labels, values[layer][checkpoint]; NaN where there is none): the grid of
    every checkpoint (report/layers_trajectory.py), columns named by their labels."""
    grid = layer_grid(trajectory, metric, None)
    if grid is None:
        return [], [], []
    layers = [raw_text(row.name) for row in grid.rows]
    columns = [record_label(record, index) for index, record in enumerate(trajectory.records)]
    values = [[math.nan if value is None else value for value in row.values] for row in grid.rows]
    return layers, columns, values


def layers_figure(trajectory: Trajectory, metric: str = "nc1") -> Figure:
    """The heat map (see the module docstring)."""
    layers, columns, values = layers_grid(trajectory, metric)
    if not layers:
        raise InputError("--layers-plot: the trajectory holds no layers; measure it with --layers")
    figure = Figure(figsize=(max(5.0, 0.7 * len(columns) + 3.0), max(3.0, 0.4 * len(layers) + 1.8)))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    finite = [value for row in values for value in row if math.isfinite(value)]
    positive = [value for value in finite if value > 0]
    norm: Normalize
    if metric in LOG_METRICS and positive:
        norm = LogNorm(vmin=min(positive), vmax=max(max(positive), min(positive) * 1.0001))
        values = [[value if value > 0 else math.nan for value in row] for row in values]
    else:
        low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
        norm = Normalize(vmin=low, vmax=high if high > low else low + 1e-12)
    image = ax.imshow(values, aspect="auto", cmap="viridis", norm=norm, interpolation="nearest")
    ax.set_xticks(range(len(columns)), [_tick(label) for label in columns], rotation=45, ha="right")
    ax.set_yticks(range(len(layers)), [_tick(name) for name in layers])
    ax.set_xlabel("checkpoint")
    ax.set_ylabel("layer (input of)")
    ax.set_title(f"{metric} across depth" + (" (log colour scale)" if isinstance(norm, LogNorm) else ""))
    figure.colorbar(image, ax=ax, label=metric)
    figure.tight_layout()
    return figure


def plot_layers(trajectory: Trajectory, path: str | Path, metric: str = "nc1") -> None:
    """Write :func:`layers_figure` as a PNG, atomically."""
    save_figure(layers_figure(trajectory, metric), path)
