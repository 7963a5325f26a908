"""The interface every output format implements (table, JSON, Markdown, JUnit, HTML, step summary, plots).

A format renders a :class:`Trajectory` (``measure``'s single report is a trajectory of one, ``single``) and
shows it on stdout or writes it to a file (atomically). Every text format names the escaper of its
untrusted strings (:mod:`nc_audit.report.escape`): labels, paths, notes and rule text come from inputs,
and :meth:`TextFormat.text` is how a format writes one — a checkpoint named ``a`b⏎## injected.pt`` never
forges a heading, a tag, an XML element or a terminal sequence.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from nc_audit.report.model import JSON, Report, Trajectory


class OutputFormat(ABC):
    """One way of writing measurement results. ``name`` is what ``--format`` and the registry call it;
    ``announce`` says whether writing a file is reported on stderr (``wrote PATH``)."""

    name: ClassVar[str]
    announce: ClassVar[bool] = False

    @abstractmethod
    def write(self, result: Trajectory, path: Path) -> None:
        """Write ``result`` to ``path`` (atomically: a reader never sees half a file)."""


class TextFormat(OutputFormat):
    """A format that is text: rendered once, printed on stdout or written to a file as it is."""

    #: How an untrusted string (a label, path, note or rule) is written in this format.
    escape: ClassVar[staticmethod[[Any], str]]

    def text(self, value: Any) -> str:
        """``value`` (from an input) as this format's safe text."""
        return type(self).escape(value)

    @abstractmethod
    def render(self, result: Trajectory) -> str:
        """The whole document."""

    def show(self, result: Trajectory) -> None:
        """Print the document on stdout."""
        write_stdout(self.render(result))

    def write(self, result: Trajectory, path: Path) -> None:
        from nc_audit.io.guards.atomic import atomic_write_text

        atomic_write_text(path, self.render(result))


def as_document(result: Trajectory) -> dict[str, JSON]:
    """The JSON form of ``result`` (a report's for a single report), which the renderers read."""
    return result.to_dict()


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
