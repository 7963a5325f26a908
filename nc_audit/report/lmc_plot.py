"""The PNG of the linear-mode-connectivity study: barriers and dips against the spawn epoch k.

The children's values are drawn against k on an evenly spaced axis (0, 1, 2, 5, 10, … is roughly
logarithmic), with ± std error bars; the independent pairs, which have no k, are a dashed level with a ± std
band across the panel. Barriers span four decades and are often exactly 0, so their y-axis is symmetric-log
(linear below 1e-4); NC1 is on a log axis. Titles and legends are shown without mathtext.
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

INDEPENDENT = "independent"


@dataclass(frozen=True)
class LmcPanel:
    """One panel: its title, the summary columns it draws (column, label) and its y scale."""

    title: str
    series: tuple[tuple[str, str], ...]
    scale: str = "symlog"


PANELS = (
    LmcPanel("loss barrier", (("loss_barrier_train", "train"), ("loss_barrier_test", "test"))),
    LmcPanel("error barrier", (("error_barrier_train", "train"), ("error_barrier_test", "test"))),
    LmcPanel("MIR dip (train)", (("mir_dip", "MIR dip"),)),
    LmcPanel("HDR rise (train)", (("hdr_rise", "HDR rise"),)),
    LmcPanel("NC1 (train)", (("nc1_mid", "at α = 0.5"), ("nc1_ends", "at the ends")), "log"),
    LmcPanel("test error of the networks", (("test_error", "mean of the two ends"),), "linear"),
)


def _stat(row: Mapping[str, Any], column: str) -> tuple[float, float]:
    stat = row.get(column) or {}
    mean = stat.get("mean") if isinstance(stat, Mapping) else None
    std = stat.get("std") if isinstance(stat, Mapping) else None
    return (math.nan if mean is None else float(mean)), (0.0 if std is None else float(std))


def plot_lmc(document: Mapping[str, Any], path: Path | str) -> None:
    """Write the PNG (atomically) from a study results document's summary."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows: Sequence[Mapping[str, Any]] = document["summary"]
    spawned = [row for row in rows if row.get("setting") != INDEPENDENT]
    independent = next((row for row in rows if row.get("setting") == INDEPENDENT), None)
    ticks = [visible(row.get("setting")) for row in spawned]
    figure = Figure(figsize=(13.0, 7.0), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, 3, squeeze=False).ravel()
    for ax, panel in zip(axes, PANELS, strict=True):
        for index, (column, label) in enumerate(panel.series):
            color = f"C{index}"
            means, spreads = (
                zip(*(_stat(row, column) for row in spawned), strict=True) if spawned else ((), ())
            )
            ax.errorbar(range(len(spawned)), means, yerr=spreads, marker="o", markersize=4, capsize=3, color=color,
                        label=visible(f"{label}: children of one parent"))  # fmt: skip
            if independent is not None:
                mean, std = _stat(independent, column)
                ax.axhline(mean, linestyle="--", color=color, linewidth=1.2,
                           label=visible(f"{label}: independent inits"))  # fmt: skip
                ax.axhspan(mean - std, mean + std, color=color, alpha=0.12, linewidth=0)
        if panel.scale == "symlog":
            ax.set_yscale("symlog", linthresh=1e-4)
            ax.set_ylim(bottom=0.0)  # barriers and dips are never negative; a − std bar is cut at 0
        elif panel.scale == "log":
            ax.set_yscale("log")
        ax.set_xticks(range(len(spawned)), ticks)
        ax.set_xlabel("spawn epoch k")
        ax.set_title(visible(panel.title), fontsize="medium")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small")
    seeds = len(document["settings"]["seeds"])
    figure.suptitle(
        visible(
            f"Linear mode connectivity on {document['settings']['data']}: mean ± std over {seeds} seed(s)"
        )
    )
    atomic_write_bytes(path, figure_png(figure))
