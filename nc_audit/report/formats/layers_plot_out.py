"""``track --layers-plot PATH``: the layer × checkpoint heat map of one layer metric (report/layers_plot.py)."""

from __future__ import annotations

from pathlib import Path

from nc_audit.report.formats.base import OutputFormat
from nc_audit.report.model import Trajectory


class LayersPlotFormat(OutputFormat):
    """The heat map of ``metric`` (default NC1); ``track --layers-metric`` registers another."""

    name = "layers-plot"
    announce = True

    def __init__(self, metric: str = "nc1") -> None:
        self.metric = metric

    def write(self, result: Trajectory, path: Path) -> None:
        from nc_audit.report.layers_plot import plot_layers

        plot_layers(result, path, self.metric)
