"""Rich rendering of reports for a terminal or a CI log. Rendering only: nothing here computes."""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console
from rich.table import Table

from nc_audit.metrics.catalog import METRICS
from nc_audit.report.escape import terminal
from nc_audit.report.numbers import half_widths, with_error
from nc_audit.report.numbers import precise as fmt


def distance(value: float | None, target: float | None) -> float | None:
    """|value − target|, or None when either is undefined."""
    return None if value is None or target is None else abs(value - target)


#: Narrower consoles drop the meaning column rather than wrap it into unreadable slivers.
MEANING_MIN_WIDTH = 100


def make_console() -> Console:
    """A stdout console; logs and pipes (no terminal) get 120 columns instead of Rich's 80."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=120)
    return console


def metrics_table(report: dict[str, Any], title: str | None = None, meanings: bool = True) -> Table:
    """The main table: metric, value, NC target, distance to it, and (when wide enough) its meaning."""
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("metric", style="cyan", no_wrap=True)
    table.add_column("value", justify="right")
    table.add_column("NC target", justify="right")
    table.add_column("|Δ| to NC", justify="right")
    table.add_column("meaning")
    errors = half_widths(report)  # 95% half-widths of SLQ estimates (MI, MIR)
    for key, value in report["metrics"].items():
        target = report["targets"].get(key)
        info = METRICS.get(key)
        table.add_row(
            terminal(key),
            with_error(fmt(value), key, errors, fmt),
            fmt(target),
            fmt(distance(value, target)),
            info.meaning if info else "",
        )
    return table


def header_lines(report: dict[str, Any]) -> list[str]:
    """Where the numbers came from, in two or three lines."""
    checkpoint, features = report["checkpoint"], report["features"]
    sha = terminal(str(checkpoint.get("sha256") or "")[:12])
    lines = [
        f"[bold]checkpoint[/] {terminal(checkpoint.get('path') or '—')}  head [cyan]{terminal(checkpoint.get('head'))}[/]"
        + (f"  sha256 {sha}…" if sha else ""),
        f"[bold]features[/]   {terminal(features.get('path') or '—')}  split {terminal(features['split'])}  "
        f"N={features['num_samples']} d={features['feature_dim']} C={features['num_classes']}",
    ]
    if features.get("means_split") not in (None, features["split"]):
        lines.append(
            f"[bold]class means[/] from split {terminal(features['means_split'])} ({features.get('means_samples')} samples)"
        )
    details = report.get("details") or {}
    if "accuracy" in details:
        lines.append(
            f"[bold]accuracy[/]   classifier {details['accuracy']:.4f}  nearest class mean {details['ncc_accuracy']:.4f}"
        )
    return lines


def conventions_line(report: dict[str, Any]) -> str:
    """Every convention the numbers depend on, in one line."""
    return "; ".join(f"{terminal(key)}: {terminal(value)}" for key, value in report["conventions"].items())


def render_report(report: dict[str, Any], console: Console | None = None) -> None:
    """Print one report: header, table, conventions, notes, checks, verdict."""
    console = console or make_console()
    for line in header_lines(report):
        console.print(line, highlight=False)
    console.print(metrics_table(report, meanings=console.width >= MEANING_MIN_WIDTH))
    console.print(f"[dim]conventions: {conventions_line(report)}[/]", highlight=False)
    for note in report.get("notes", []):
        console.print(f"[yellow]note:[/] {terminal(note)}", highlight=False)
    render_checks(report.get("checks", []), console)


def render_checks(checks: list[dict[str, Any]], console: Console) -> None:
    """One line per check and a verdict, when there are checks."""
    if not checks:
        return
    for check in checks:
        mark = "[green]PASS[/]" if check["passed"] else "[red]FAIL[/]"
        where = f"{terminal(check['checkpoint'])}: " if check.get("checkpoint") else ""
        console.print(
            f"{mark} {where}{terminal(check['rule'])}  (value {fmt(check.get('value'))})", highlight=False
        )
    failed = sum(not check["passed"] for check in checks)
    if failed:
        console.print(f"[bold red]{failed} of {len(checks)} checks failed[/]")
    else:
        console.print(f"[bold green]all {len(checks)} checks passed[/]")
