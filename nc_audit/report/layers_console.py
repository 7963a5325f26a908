"""Rich rendering of collapse across depth (``--layers``): one row per layer, in forward order, and a last
row of the NC targets. Rendering only: the values come from the report's typed :class:`LayerResult` s."""

from __future__ import annotations

from rich.table import Table

from nc_audit.report.console import text
from nc_audit.report.model import Report
from nc_audit.report.numbers import short

#: (metric key, column title): the table's metric columns, in order.
LAYER_COLUMNS = (
    ("nc1", "nc1"),
    ("nc1_cdnv", "cdnv"),
    ("nc2_equinorm_means", "nc2 norm"),
    ("nc2_equiangular_means", "nc2 angle"),
    ("h_means", "H(K_M)"),
    ("mir", "mir"),
    ("hdr", "hdr"),
)


def layers_table(report: Report) -> Table:
    """Layer name (the module whose input is measured), width, head|probe, and the layer's metrics."""
    table = Table(title="layers (input of each module)", title_justify="left", header_style="bold")
    table.add_column("layer", style="cyan", no_wrap=True)
    table.add_column("module", no_wrap=True)
    table.add_column("width", justify="right")
    table.add_column("vs", no_wrap=True)
    for _, title in LAYER_COLUMNS:
        table.add_column(title, justify="right", no_wrap=True)
    for layer in report.layers:
        values = layer.metrics
        table.add_row(
            text(layer.name),
            text(layer.module),
            str(layer.width),
            layer.against,
            *(short(values[key]) for key, _ in LAYER_COLUMNS),
        )
    table.add_row(
        "NC target", "", "", "", *(short(report.targets.get(key)) for key, _ in LAYER_COLUMNS), style="dim"
    )
    return table
