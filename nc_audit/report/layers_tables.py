"""The ``--layers`` tables in each text format: the layer × checkpoint table of ``track`` (console and
Markdown: at most :data:`~nc_audit.report.layers_trajectory.MAX_COLUMNS` checkpoints, evenly spread; HTML:
every checkpoint, in a box that scrolls) and the per-layer table of ``measure`` in HTML. Rendering only:
the grid comes from report/layers_trajectory.py, the columns of the per-layer table from
report/layers_console.py; every name from an input is escaped by the format's own helper (once)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from nc_audit.report.console import text
from nc_audit.report.layers_trajectory import LayerGrid, layer_grid
from nc_audit.report.model import Report, Trajectory
from nc_audit.report.numbers import short


def _grid(trajectory: Trajectory, every: bool = False) -> LayerGrid | None:
    """The grid of the trajectory's ``layers_metric``: every checkpoint, or at most MAX_COLUMNS of them."""
    if every:
        return layer_grid(trajectory, trajectory.layers_metric, None)
    return layer_grid(trajectory, trajectory.layers_metric)


def layers_trajectory_table(trajectory: Trajectory) -> Table | None:
    """The console table: one row per layer, one column per shown checkpoint, the NC target last."""
    grid = _grid(trajectory)
    if grid is None:
        return None
    table = Table(
        title=f"layers × checkpoints: {grid.metric}",
        title_justify="left",
        caption=grid.caption(),
        caption_justify="left",
        header_style="bold",
    )
    table.add_column("layer", style="cyan", no_wrap=True)
    table.add_column("width", justify="right")
    table.add_column("vs", no_wrap=True)
    for column in grid.columns:
        table.add_column(text(column), justify="right")
    table.add_column("NC target", justify="right", style="dim")
    for row in grid.rows:
        values = (short(value) for value in row.values)
        table.add_row(text(row.name), str(row.width), text(row.against), *values, short(grid.target))
    return table


def layers_trajectory_markdown(trajectory: Trajectory) -> list[str]:
    """The Markdown lines of the same table (the same checkpoints as the console's), or none; names are
    code spans, as in the trajectory table (no link, tag or emoji code of a name renders)."""
    from nc_audit.report.markdown import _code, _line, _table

    grid = _grid(trajectory)
    if grid is None:
        return []
    header = ["layer", "width", "vs", *(_code(column) for column in grid.columns), "NC target"]
    rows: list[list[Any]] = [
        [_code(row.name), str(row.width), row.against, *(short(v) for v in row.values), short(grid.target)]
        for row in grid.rows
    ]
    return [f"**Layers × checkpoints** ({_line(grid.caption())})", "", *_table(header, rows), ""]


def layers_trajectory_html(trajectory: Trajectory) -> str:
    """The HTML section of the table over every checkpoint (the page scrolls it sideways), or nothing."""
    from nc_audit.report.html import e, num, table

    grid = _grid(trajectory, every=True)
    if grid is None:
        return ""
    header = ["layer", "width", "vs", *grid.columns, "NC target"]
    rows = [
        [row.name, row.width, row.against, *(num(v, 4) for v in row.values), num(grid.target, 4)]
        for row in grid.rows
    ]
    caption = grid.caption() + "; every checkpoint shown"
    return f'<h2>Layers × checkpoints</h2><p class="muted">{e(caption)}</p>' + table(header, rows)


def layers_report_html(report: Report) -> str:
    """The HTML section of ``measure --layers``: the console's per-layer columns, then the NC targets."""
    from nc_audit.report.html import num, table
    from nc_audit.report.layers_console import LAYER_COLUMNS

    if not report.layers:
        return ""
    header = ["layer", "module", "width", "vs", *(title for _, title in LAYER_COLUMNS)]
    rows: list[list[Any]] = [
        [layer.name, layer.module, layer.width, layer.against]
        + [num(layer.metrics[key], 4) for key, _ in LAYER_COLUMNS]
        for layer in report.layers
    ]
    rows.append(["NC target", "", "", "", *(num(report.targets.get(key), 4) for key, _ in LAYER_COLUMNS)])
    classes = [""] * len(report.layers) + ["target"]
    return "<h2>Layers</h2>" + table(header, rows, numeric_from=2, classes=classes)
