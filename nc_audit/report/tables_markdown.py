"""The Markdown renderer of experiment output (:mod:`nc_audit.report.tables`): RESULTS.md, SUMMARY.md and
the table the studies and prune print on stdout.

Every piece that may come from an input goes through :mod:`nc_audit.report.escape` here, and nowhere
else: text with :func:`~nc_audit.report.escape.markdown_text` (in a table cell
:func:`~nc_audit.report.escape.markdown_cell`), code with :func:`~nc_audit.report.escape.markdown_code`.
"""

from __future__ import annotations

import re

from nc_audit.report.escape import markdown_cell, markdown_code, markdown_text
from nc_audit.report.tables import (
    Block,
    Bullets,
    Code,
    Inline,
    Line,
    Markup,
    Number,
    Page,
    Paragraph,
    Spread,
    Table,
)

#: What opens a Markdown block at the start of a line (heading, quote, list, rule, table, numbered list).
_BLOCK_START = re.compile(r"^([#>+*=|~-]|\d+[.)])")


def _piece(piece: Inline, in_cell: bool) -> str:
    if isinstance(piece, Markup):
        return piece.text
    if isinstance(piece, Code):
        return markdown_code(piece.value)
    text = piece.text() if isinstance(piece, (Number, Spread)) else piece
    return markdown_cell(text) if in_cell else markdown_text(text)


def line_text(line: Line, in_cell: bool = False) -> str:
    """One line of Markdown; text from an input at the start of a line (not a cell) cannot open a block
    (``#``, ``>``, ``-``, ``|`` ...)."""
    text = "".join(_piece(piece, in_cell) for piece in line)
    if not in_cell and line and isinstance(line[0], str):
        text = _BLOCK_START.sub(r"\\\1", text)
    return text


def table_text(table: Table) -> str:
    """A Markdown table, ending with a newline."""
    header = "| " + " | ".join(markdown_cell(column.header) for column in table.columns) + " |"
    rule = "|" + "".join("---:|" if c.align == "right" else "---|" for c in table.columns)
    rows = ["| " + " | ".join(line_text(cell, in_cell=True) for cell in row) + " |" for row in table.rows]
    return "\n".join([header, rule, *rows]) + "\n"


def _block_text(block: Block) -> str:
    if isinstance(block, Table):
        return table_text(block).removesuffix("\n")
    if isinstance(block, Bullets):
        return "\n".join("- " + line_text(item) for item in block.items)
    assert isinstance(block, Paragraph)
    return line_text(block.line)


def page_text(page: Page) -> str:
    """The page: ``# title``, then its blocks separated by blank lines, ending with one newline."""
    parts = ["# " + line_text(page.title), *(_block_text(block) for block in page.blocks)]
    return "\n\n".join(parts) + "\n"
