"""``--plot PATH``: a PNG of every metric against step, one panel per scale (report/plots.py)."""

from __future__ import annotations

from pathlib import Path

from nc_audit.report.formats.base import OutputFormat
from nc_audit.report.model import Trajectory


class PlotFormat(OutputFormat):
    name = "plot"
    announce = True

    def write(self, result: Trajectory, path: Path) -> None:
        from nc_audit.report.plots import plot_trajectory

        plot_trajectory(result, path)
