"""The typed model of experiment output (studies, prune, demo): pages of paragraphs, bullets and tables.

A page is built from typed pieces, and only the renderers (:mod:`nc_audit.report.tables_markdown`,
:mod:`nc_audit.report.tables_console`) turn them into text, each escaping for its format:

- a plain ``str`` is text that may come from an input (a checkpoint path, a data file name, a label read
  back from a record) and is always escaped; our own wording is a ``str`` too, which the escaping leaves
  as it is;
- :class:`Markup` is format syntax of our own (``**``, a code span around a command name) and is the only
  piece written verbatim;
- :class:`Code` is an input shown as inline code; :class:`Number` and :class:`Spread` are numbers that
  the renderer formats with :mod:`nc_audit.report.numbers`.

So no input can open a heading, a table row, a code span, HTML or a link, whatever the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from nc_audit.report.numbers import UNDEFINED, as_number, decimals, general


@dataclass(frozen=True)
class Markup:
    """Format syntax of our own, written verbatim in Markdown (and as plain text on the console)."""

    text: str


@dataclass(frozen=True)
class Code:
    """A value from an input shown as inline code (a path, a command line)."""

    value: object


@dataclass(frozen=True)
class Number:
    """A number: ``digits`` decimals (``None``: the shortest form, for settings such as ε or a sparsity);
    undefined (None, NaN, not a number) prints as ``undefined``."""

    value: object
    digits: int | None = 4
    undefined: str = UNDEFINED

    def text(self) -> str:
        """The number as plain text (escaped by each renderer like any text)."""
        if self.digits is None:
            return general(self.value, self.undefined)
        return decimals(self.value, self.digits, self.undefined)


@dataclass(frozen=True)
class Spread:
    """Mean ± sample standard deviation over ``n`` runs (no ± for one run, ``—`` when there is no value)."""

    mean: float | None
    std: float | None
    n: int
    digits: int = 4

    @classmethod
    def of(cls, stat: Mapping[str, object] | None, digits: int = 4) -> Spread:
        """From a summary cell ``{"mean", "std", "n"}`` (nc_audit.experiments.studies.summary)."""
        if not isinstance(stat, Mapping):
            return cls(None, None, 0, digits)
        count = stat.get("n")
        n = count if isinstance(count, int) and not isinstance(count, bool) else 0
        return cls(as_number(stat.get("mean")), as_number(stat.get("std")), n, digits)

    def text(self) -> str:
        """``0.9822 ± 0.0031``; the mean alone for one run; ``—`` without a mean."""
        if self.mean is None:
            return UNDEFINED
        mean = decimals(self.mean, self.digits)
        return mean if self.n <= 1 else f"{mean} ± {decimals(self.std, self.digits)}"


#: One piece of a line: escaped text, our markup, inline code or a number.
Inline = str | Markup | Code | Number | Spread
#: A line (a title, a paragraph, a bullet, a table cell): pieces written one after the other.
Line = tuple[Inline, ...]


@dataclass(frozen=True)
class Column:
    """A table column: its header (escaped like any text) and its alignment."""

    header: str
    align: Literal["right", "default"] = "right"


@dataclass(frozen=True)
class Table:
    """Rows of cells, one :data:`Line` per column, in the columns' order."""

    columns: tuple[Column, ...]
    rows: tuple[tuple[Line, ...], ...]

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"a row of {len(row)} cells in a table of {len(self.columns)} columns")


@dataclass(frozen=True)
class Paragraph:
    """One paragraph, written as one line."""

    line: Line


@dataclass(frozen=True)
class Bullets:
    """A list, one line per item."""

    items: tuple[Line, ...]


Block = Paragraph | Bullets | Table


@dataclass(frozen=True)
class Page:
    """A Markdown page: a level-1 title, then blocks separated by blank lines."""

    title: Line
    blocks: tuple[Block, ...]


def cell(value: object, digits: int | None = 4) -> Line:
    """A table cell: a number as a :class:`Number`, a summary cell as a :class:`Spread`, text as text."""
    if isinstance(value, Mapping):
        return (Spread.of(value, digits or 4),)
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return (Number(value, digits),)
    return (str(value),)
