"""Rich rendering of reports for a terminal or a CI log. Rendering only: nothing here computes.

Reads the typed :class:`~nc_audit.report.model.Report` and :class:`~nc_audit.report.model.Check`; every
string from an input passes :func:`text` (Rich markup and control characters escaped, once: a view from
the table format is already escaped, nc_audit.report.formats.view).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from nc_audit.metrics.catalog import METRICS
from nc_audit.report.consoles import new_console
from nc_audit.report.escape import terminal
from nc_audit.report.formats.view import Escaped, safe
from nc_audit.report.model import Check, Report
from nc_audit.report.numbers import decimals, half_widths, with_error
from nc_audit.report.numbers import precise as fmt


def text(value: Any) -> str:
    """``value`` as console text: markup and control characters escaped, never twice."""
    return safe(value, terminal)


def distance(value: float | None, target: float | None) -> float | None:
    """|value − target|, or None when either is undefined."""
    return None if value is None or target is None else abs(value - target)


#: Narrower consoles drop the meaning column rather than wrap it into unreadable slivers.
MEANING_MIN_WIDTH = 100


def make_console() -> Console:
    """A stdout console; logs and pipes (no terminal) get 120 columns instead of Rich's 80."""
    console = new_console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = new_console(width=120)
    return console


def metrics_table(report: Report, title: str | None = None, meanings: bool = True) -> Table:
    """The main table: metric, value, NC target, distance to it, and (when wide enough) its meaning."""
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("metric", style="cyan", no_wrap=True)
    table.add_column("value", justify="right")
    table.add_column("NC target", justify="right")
    table.add_column("|Δ| to NC", justify="right")
    table.add_column("meaning")
    errors = half_widths({"details": report.details})  # 95% half-widths of SLQ estimates (MI, MIR)
    for key, value in report.metrics.items():
        target = report.targets.get(key)
        info = METRICS.get(key)
        table.add_row(
            text(key),
            with_error(fmt(value), key, errors, fmt),
            fmt(target),
            fmt(distance(value, target)),
            info.meaning if info else "",
        )
    return table


def header_lines(report: Report) -> list[str]:
    """Where the numbers came from, in two or three lines."""
    checkpoint, features = report.checkpoint, report.features
    sha256 = checkpoint.get("sha256") or ""
    sha = text(sha256.cut(12) if isinstance(sha256, Escaped) else str(sha256)[:12])
    lines = [
        f"[bold]checkpoint[/] {text(checkpoint.get('path') or '—')}  head [cyan]{text(checkpoint.get('head'))}[/]"
        + (f"  sha256 {sha}…" if sha else ""),
        f"[bold]features[/]   {text(features.get('path') or '—')}  split {text(features.get('split'))}  "
        f"N={text(features.get('num_samples'))} d={text(features.get('feature_dim'))} "
        f"C={text(features.get('num_classes'))}",
    ]
    if features.get("means_split") not in (None, features.get("split")):
        lines.append(
            f"[bold]class means[/] from split {text(features['means_split'])} "
            f"({text(features.get('means_samples'))} samples)"
        )
    details = report.details
    if "accuracy" in details:
        lines.append(
            f"[bold]accuracy[/]   classifier {decimals(details['accuracy'], 4)}  "
            f"nearest class mean {decimals(details.get('ncc_accuracy'), 4)}"
        )
    return lines


def conventions_line(report: Report) -> str:
    """Every convention the numbers depend on, in one line."""
    return "; ".join(f"{text(key)}: {text(value)}" for key, value in report.conventions.items())


def render_report(report: Report, console: Console | None = None) -> None:
    """Print one report: header, table, conventions, notes, the layers (``--layers``), checks, verdict."""
    console = console or make_console()
    for line in header_lines(report):
        console.print(line, highlight=False)
    console.print(metrics_table(report, meanings=console.width >= MEANING_MIN_WIDTH))
    console.print(f"[dim]conventions: {conventions_line(report)}[/]", highlight=False)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {text(note)}", highlight=False)
    if report.layers:  # collapse across depth, after the head's own report
        from nc_audit.report.layers_console import layers_table

        console.print(layers_table(report))
    render_checks([("", check) for check in report.checks], console)


def render_checks(checks: Sequence[tuple[str, Check]], console: Console) -> None:
    """One line per (checkpoint, check) — the checkpoint named when given — and a verdict, when there are
    checks."""
    if not checks:
        return
    for where, check in checks:
        mark = "[green]PASS[/]" if check.passed else "[red]FAIL[/]"
        at = f"{text(where)}: " if where else ""
        console.print(f"{mark} {at}{text(check.rule)}  (value {fmt(check.value)})", highlight=False)
    failed = sum(not check.passed for _, check in checks)
    if failed:
        console.print(f"[bold red]{failed} of {len(checks)} checks failed[/]")
    else:
        console.print(f"[bold green]all {len(checks)} checks passed[/]")
