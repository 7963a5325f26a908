"""The interface every output format implements (table, JSON, Markdown, JUnit, HTML, step summary, plots).

A format renders a :class:`Trajectory` (``measure``'s single report is a trajectory of one, ``single``) and
shows it on stdout or writes it to a file (atomically). Every text format names the escaper of its
untrusted strings (:mod:`nc_audit.report.escape`), and the interface applies it in one place: a text
format's renderer (:meth:`TextFormat.render_view`) only ever sees the escaped view of the result
(:mod:`nc_audit.report.formats.view`: labels, paths, notes, rule text, conventions already escaped), so a
checkpoint named ``a`b⏎## injected.pt`` never forges a heading, a tag, an XML element or a terminal
sequence — even in a new format whose renderer escapes nothing itself.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, final

from nc_audit.report.formats.view import escaped_view, safe
from nc_audit.report.model import Report, Trajectory


class OutputFormat(ABC):
    """One way of writing measurement results. ``name`` is what ``--format`` and the registry call it;
    ``announce`` says whether writing a file is reported on stderr (``wrote PATH``)."""

    name: ClassVar[str]
    announce: ClassVar[bool] = False

    @abstractmethod
    def write(self, result: Trajectory, path: Path) -> None:
        """Write ``result`` to ``path`` (atomically: a reader never sees half a file)."""


class TextFormat(OutputFormat):
    """A format that is text: rendered once, printed on stdout or written to a file as it is.

    A subclass names its ``escape`` and implements :meth:`render_view` over the escaped view."""

    #: How an untrusted string (a label, path, note or rule) is written in this format.
    escape: ClassVar[staticmethod[[Any], str]]

    def text(self, value: Any) -> str:
        """``value`` (from an input) as this format's safe text (never escaped twice: view.safe)."""
        return safe(value, type(self).escape)

    @final
    def view(self, result: Trajectory) -> Trajectory:
        """``result`` with every untrusted string escaped by this format's escaper."""
        return escaped_view(result, type(self).escape)

    @final
    def render(self, result: Trajectory) -> str:
        """The whole document: :meth:`render_view` of the escaped view (the one place escaping happens)."""
        return self.render_view(self.view(result))

    @abstractmethod
    def render_view(self, view: Trajectory) -> str:
        """The whole document of ``view``, whose strings from inputs are already escaped."""

    def show(self, result: Trajectory) -> None:
        """Print the document on stdout."""
        write_stdout(self.render(result))

    def write(self, result: Trajectory, path: Path) -> None:
        from nc_audit.io.guards.atomic import atomic_write_text

        atomic_write_text(path, self.render(result))


def single(result: Trajectory) -> Report | None:
    """The one report of ``measure``, or None for a trajectory."""
    return result[0] if result.single and len(result) == 1 else None


def write_stdout(text: str) -> None:
    """Machine output on stdout, exactly as given (no Rich wrapping); a lone surrogate (from a non-UTF-8
    file name) is written as an escape whatever the stream's encoding."""
    text = text if text.endswith("\n") else text + "\n"
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    sys.stdout.write(text.encode(encoding, "backslashreplace").decode(encoding, "replace"))
    sys.stdout.flush()
