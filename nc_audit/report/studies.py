"""A study's summary as a typed table of mean ± std cells (:mod:`nc_audit.report.tables`), and as a PNG
with error bars.

A summary row (nc_audit.experiments.studies.summary) holds its group's values (ε, λ, labels per class,
sparsity, ...) and, per column, ``{"mean", "std", "n"}``. Both take the row order as given; every string
drawn on the plot is one printable line, shown without mathtext.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nc_audit.io.guards.atomic import atomic_write_bytes
from nc_audit.report.escape import visible
from nc_audit.report.plots import figure_png
from nc_audit.report.tables import Column, Line, Number, Spread, Table, cell


def summary_table(
    rows: Sequence[Mapping[str, Any]],
    groups: Sequence[tuple[str, str]],
    columns: Sequence[tuple[str, str]],
    digits: int = 4,
) -> Table:
    """The group columns (key, header) as given, then one mean ± std cell per (key, header)."""
    headers = tuple(Column(header) for _, header in (*groups, *columns))

    def cells(row: Mapping[str, Any]) -> tuple[Line, ...]:
        values = tuple(cell(row[key], None) for key, _ in groups)
        return values + tuple((Spread.of(row.get(key), digits),) for key, _ in columns)

    return Table(headers, tuple(cells(row) for row in rows))


def _group_value(value: Any) -> str:
    """A group's value as one printable line (:func:`visible`): text as text, a number in its shortest
    form. Titles, labels and legends are shown without mathtext (nc_audit.report.figure_text)."""
    return visible(value if isinstance(value, str) else Number(value, None).text())


def tick_text(value: Any) -> str:
    """A group's value as a tick label, which keeps mathtext: ``$`` escaped (``a$\\frac$`` stopped the
    plot with a parse error)."""
    return _group_value(value).replace("$", r"\$")


@dataclass(frozen=True)
class Panel:
    """One panel: the summary column it draws, its title, a dashed target line, and a log y-axis."""

    column: str
    title: str
    target: float | None = None
    log: bool = False


def geometry_panels(targets: Mapping[str, Any], split: str | None = None) -> list[Panel]:
    """NC1 (log axis), MIR and HDR with their Neural Collapse targets; ``split`` names the features."""
    where = f" ({split})" if split else ""
    nc1_title = f"NC1 ({split}, log scale)" if split else "NC1 (log scale)"
    return [Panel("nc1", nc1_title, log=True), Panel("mir", f"MIR{where}", targets.get("mir")),
            Panel("hdr", f"HDR{where}", targets.get("hdr"))]  # fmt: skip


def plot_study(
    rows: Sequence[Mapping[str, Any]],
    x_key: str,
    panels: Sequence[Panel],
    path: Path | str,
    *,
    title: str,
    xlabel: str,
    line_key: str | None = None,
    categorical: bool = False,
) -> None:
    """A PNG (written atomically): one panel per column, mean against ``x_key`` with ± std error bars,
    one line per value of ``line_key`` (or a single line). ``categorical`` spaces the x values evenly."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lines: dict[Any, list[Mapping[str, Any]]] = {}
    for row in rows:
        lines.setdefault(row[line_key] if line_key else None, []).append(row)
    x_values = list(dict.fromkeys(row[x_key] for row in rows))
    position = {value: (index if categorical else value) for index, value in enumerate(x_values)}
    ncols = len(panels) if len(panels) <= 4 else 3  # 5 or 6 panels: two rows of three
    nrows = math.ceil(len(panels) / ncols)
    figure = Figure(figsize=(4.2 * ncols, 3.4 * nrows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, panel in zip(axes, panels, strict=False):
        for name, members in lines.items():
            stats = [row.get(panel.column) or {} for row in members]
            x = [position[row[x_key]] for row in members]
            y = [math.nan if s.get("mean") is None else s["mean"] for s in stats]
            spread = [0.0 if s.get("std") is None else s["std"] for s in stats]
            label = None if name is None else f"{visible(line_key)} = {_group_value(name)}"
            ax.errorbar(x, y, yerr=spread, marker="o", markersize=4, capsize=3, label=label)
        if panel.target is not None:
            ax.axhline(panel.target, linestyle="--", color="grey", linewidth=1, label="NC target")
        if panel.log:
            ax.set_yscale("log")
        if categorical:
            ax.set_xticks(range(len(x_values)), [tick_text(v).replace(" ", "\n") for v in x_values])
        ax.set_title(visible(panel.title), fontsize="medium")
        ax.set_xlabel(visible(xlabel))
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    figure.suptitle(visible(title))
    atomic_write_bytes(path, figure_png(figure))
