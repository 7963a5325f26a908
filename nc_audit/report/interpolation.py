"""`nc-audit interpolate`'s output: the table of the measured line θ(α) (one row per α, the NC targets in
the last row) as a typed :class:`~nc_audit.report.tables.Table`, printed on the console or written as
Markdown by the experiment-output renderers. The checkpoint paths, the data name and the split come from
the user: they are pieces the renderers escape (report/tables_markdown.py, report/tables_console.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nc_audit.report.numbers import precise, short
from nc_audit.report.tables import Code, Column, Line, Markup, Table
from nc_audit.report.tables_console import console_text
from nc_audit.report.tables_markdown import line_text, table_text

Document = Mapping[str, Any]

#: Table columns after α: accuracy, loss, then every class-level metric (docs/METRICS.md order).
LEAD_COLUMNS = ("accuracy", "loss")
#: Short console headers for the long NC2 keys (M: centred class means, W: head rows).
SHORT_NAMES = {
    "nc1_cdnv": "cdnv",
    "nc2_equinorm_means": "eqnorm M",
    "nc2_equinorm_head": "eqnorm W",
    "nc2_equiangular_means": "eqangle M",
    "nc2_equiangular_head": "eqangle W",
    "nc2_maxangle_means": "maxangle M",
    "nc2_maxangle_head": "maxangle W",
}
LEGEND = "NC2 columns: M = centred class means, W = head rows; last row: values at Neural Collapse"


def four_digits(value: Any) -> str:
    """Four significant digits in the console's form (1e-4..1e6 plain, else scientific; — when undefined)."""
    text = short(value)
    return precise(None if text == short(None) else float(text))


def interpolation_table(document: Document, keys: Sequence[str], short_names: bool = False) -> Table:
    """One row per α (accuracy, loss, then ``keys``), the NC targets in the last row."""
    names = [SHORT_NAMES.get(key, key) if short_names else key for key in keys]
    columns = tuple(Column(name) for name in ("α", *LEAD_COLUMNS, *names))
    rows: list[tuple[Line, ...]] = []
    for record in document["records"]:
        cells = [f"{float(record['alpha']):.3g}", *(four_digits(record.get(key)) for key in LEAD_COLUMNS)]
        cells += [four_digits((record.get("metrics") or {}).get(key)) for key in keys]
        rows.append(tuple((cell,) for cell in cells))
    targets = document.get("targets") or {}
    rows.append(
        (
            ("NC target" if not short_names else "NC",),
            ("",),
            ("",),
            *((four_digits(targets.get(key)),) for key in keys),
        )
    )
    return Table(columns, tuple(rows))


def _title(document: Document, code: bool) -> Line:
    """``A → B on DATA [SPLIT]``: the endpoints and the data as code (Markdown) or text (console)."""
    a, b, data = (document["a"]["path"], document["b"]["path"], document["data"])
    piece = Code if code else str
    return (
        piece(a),
        " → ",
        piece(b),
        " on ",
        piece(data),
        Markup(" \\["),
        str(document["split"]),
        Markup("]"),
    )


def interpolation_markdown(document: Document, keys: Sequence[str]) -> str:
    """A Markdown heading naming the two checkpoints, then the table."""
    heading = "## " + line_text(("Interpolation ", *_title(document, code=True)))
    return heading + "\n\n" + table_text(interpolation_table(document, keys))


def print_interpolation(document: Document, keys: Sequence[str]) -> None:
    """The table on stdout (wide enough that no cell is cut in a CI log), then what the columns mean."""
    from rich.table import Table as RichTable

    from nc_audit.report.consoles import new_console

    table = interpolation_table(document, keys, short_names=True)
    rich = RichTable(
        title=console_text(_title(document, code=False)), title_justify="left", header_style="bold"
    )
    for column in table.columns:
        rich.add_column(console_text((column.header,)), justify="right", no_wrap=True)
    for index, row in enumerate(table.rows):
        last = index == len(table.rows) - 1
        rich.add_row(*(console_text(cell) for cell in row), style="dim" if last else None)
    needed = 1 + sum(max(len(column.header), 9) + 3 for column in table.columns)  # every cell whole
    console = new_console()
    console = console if console.width >= needed else new_console(width=needed)
    console.print(rich)
    console.print(f"[dim]{LEGEND}[/]")
