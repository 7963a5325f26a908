"""Rich rendering of a trajectory: one row per checkpoint, the main metrics beside their NC targets."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from nc_audit.report.console import make_console, render_checks
from nc_audit.report.escape import terminal
from nc_audit.report.model import record_label
from nc_audit.report.numbers import short

COLUMNS = ("nc1", "nc2_equinorm_means", "nc3", "nc4", "h_head", "h_means", "mir", "hdr")
SHORT = {
    "nc2_equinorm_means": "nc2 norm",
    "nc2_maxangle_means": "nc2 angle",
    "nc1_cdnv": "cdnv",
    "h_means": "h_means",
}


def trajectory_table(trajectory: dict[str, Any]) -> Table:
    """Rows: checkpoints in order; columns: step, name, accuracy and the main metrics; a last row of NC targets."""
    records = trajectory["records"]
    targets = records[0]["targets"] if records else {}
    table = Table(header_style="bold", title="trajectory", title_justify="left")
    table.add_column("step", justify="right", no_wrap=True, min_width=4)
    table.add_column("checkpoint", style="cyan", no_wrap=True)
    table.add_column("acc", justify="right", no_wrap=True, min_width=5)
    present = [key for key in COLUMNS if records and key in records[0]["metrics"]]
    for key in present:
        table.add_column(SHORT.get(key, key), justify="right", no_wrap=True)
    for record in records:
        accuracy = (record.get("details") or {}).get("accuracy", record["metrics"].get("accuracy"))
        step = record.get("step")
        row = [terminal(step) if step is not None else "—", terminal(record_label(record)), short(accuracy)]
        row += [short(record["metrics"].get(key)) for key in present]
        table.add_row(*row, style=None if record.get("passed", True) else "red")
    table.add_row("", "NC target", "", *(short(targets.get(key)) for key in present), style="dim")
    return table


def render_trajectory(trajectory: dict[str, Any], console: Console | None = None) -> None:
    """Print the trajectory table, the conventions of its first record, notes, and the checks."""
    console = console or make_console()
    console.print(trajectory_table(trajectory))
    records = trajectory["records"]
    if records:
        conventions = "; ".join(f"{k}: {v}" for k, v in records[0].get("conventions", {}).items())
        console.print(f"[dim]conventions: {terminal(conventions)}[/]", highlight=False)
        notes = dict.fromkeys(note for record in records for note in record.get("notes", []))
        for note in notes:
            console.print(f"[yellow]note:[/] {terminal(note)}", highlight=False)
    checks = [
        {**check, "checkpoint": record_label(record, index)}
        for index, record in enumerate(records)
        for check in record.get("checks", [])
    ]
    mode = trajectory.get("gate")
    gated = [record_label(record, index) for index, record in enumerate(records) if record.get("gated")]
    if checks and mode in ("last", "best") and gated:
        console.print(
            f"[dim]gate: the {mode} checkpoint ({terminal(gated[0])}); --gate all checks every one[/]"
        )
    render_checks(checks, console)
