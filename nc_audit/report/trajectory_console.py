"""Rich rendering of a trajectory: one row per checkpoint, the main metrics beside their NC targets."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from nc_audit.report.console import make_console, render_checks, text
from nc_audit.report.model import Trajectory, record_label
from nc_audit.report.numbers import short

COLUMNS = ("nc1", "nc2_equinorm_means", "nc3", "nc4", "h_head", "h_means", "mir", "hdr")
SHORT = {
    "nc2_equinorm_means": "nc2 norm",
    "nc2_maxangle_means": "nc2 angle",
    "nc1_cdnv": "cdnv",
    "h_means": "h_means",
}


def trajectory_table(trajectory: Trajectory) -> Table:
    """Rows: checkpoints in order; columns: step, name, accuracy and the main metrics; a last row of NC targets."""
    records = trajectory.records
    targets = records[0].targets if records else {}
    table = Table(header_style="bold", title="trajectory", title_justify="left")
    table.add_column("step", justify="right", no_wrap=True, min_width=4)
    table.add_column("checkpoint", style="cyan", no_wrap=True)
    table.add_column("acc", justify="right", no_wrap=True, min_width=5)
    present = [key for key in COLUMNS if records and key in records[0].metrics]
    for key in present:
        table.add_column(SHORT.get(key, key), justify="right", no_wrap=True)
    for record in records:
        accuracy = record.details.get("accuracy", record.metrics.get("accuracy"))
        step = record.step
        row = [text(step) if step is not None else "—", text(record_label(record)), short(accuracy)]
        row += [short(record.metrics.get(key)) for key in present]
        table.add_row(*row, style=None if record.passed else "red")
    table.add_row("", "NC target", "", *(short(targets.get(key)) for key in present), style="dim")
    return table


def render_trajectory(trajectory: Trajectory, console: Console | None = None) -> None:
    """Print the trajectory table, the conventions of its first record, notes, and the checks."""
    console = console or make_console()
    console.print(trajectory_table(trajectory))
    if any(record.layers for record in trajectory.records):  # collapse across depth (--layers)
        from nc_audit.report.layers_tables import layers_trajectory_table

        console.print(layers_trajectory_table(trajectory))
    records = trajectory.records
    if records:
        conventions = "; ".join(f"{text(k)}: {text(v)}" for k, v in records[0].conventions.items())
        console.print(f"[dim]conventions: {conventions}[/]", highlight=False)
        notes = dict.fromkeys(note for record in records for note in record.notes)
        for note in notes:
            console.print(f"[yellow]note:[/] {text(note)}", highlight=False)
    checks = [
        (record_label(record, index), check)
        for index, record in enumerate(records)
        for check in record.checks
    ]
    mode = trajectory.gate
    gated = [record_label(record, index) for index, record in enumerate(records) if record.gated]
    if checks and mode in ("last", "best") and gated:
        console.print(f"[dim]gate: the {mode} checkpoint ({text(gated[0])}); --gate all checks every one[/]")
    render_checks(checks, console)
