"""The console renderer of experiment output (:mod:`nc_audit.report.tables`): the line a study, prune or
the demo prints per finished run, and the files it wrote.

Every piece is made one line of printable characters (:func:`~nc_audit.report.escape.terminal`: control
characters, bidirectional overrides and line separators shown as escapes, Rich markup escaped), so the
result is printed with ``markup=True`` and no input can forge a line, move the cursor or style the text.
"""

from __future__ import annotations

from nc_audit.report.escape import terminal
from nc_audit.report.tables import Code, Inline, Line, Markup, Number, Spread


def _piece(piece: Inline) -> str:
    if isinstance(piece, Markup):
        return terminal(piece.text)
    if isinstance(piece, Code):
        return terminal(piece.value)
    if isinstance(piece, (Number, Spread)):
        return terminal(piece.text())
    return terminal(piece)


def console_text(line: Line) -> str:
    """One line of Rich markup in which every piece is escaped."""
    return "".join(_piece(piece) for piece in line)
