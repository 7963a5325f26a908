"""The escaped view a text format renders: the result with every string that came from an input already
escaped for that format, so a renderer that forgets to escape still writes safe text.

Untrusted strings are everything a file or a command line put in a report: labels, checkpoint and feature
fields (paths, hashes, heads, splits), conventions (names and values), notes, metric names, details, and a
check's rule, name, metric, reason and operator. :func:`escaped_view` replaces each with an
:class:`Escaped` string — the text ``escape(raw)`` that the format may write as it is — and keeps numbers,
booleans and None as they are, for the renderer to format.

A renderer that escapes a value itself for another context (a Markdown code span, a table cell, a
truncated hash) starts again from the raw text (:func:`raw_text`, :meth:`Escaped.cut`), and
:func:`safe` never escapes an already escaped string twice. Text composed from several values for a
document that escapes its text afterwards is composed from the raw texts (e.g.
:func:`nc_audit.report.checks.check_message`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from nc_audit.report.model import Check, Conventions, Report, Trajectory

Escaper = Callable[[Any], str]


class Escaped(str):
    """Text already escaped by ``escape``; ``raw`` is the input's own text."""

    raw: str
    escape: Escaper

    def __new__(cls, raw: str, escape: Escaper) -> Escaped:
        text = raw.raw if isinstance(raw, Escaped) else str(raw)
        self = super().__new__(cls, escape(text))
        self.raw = text
        self.escape = escape
        return self

    def cut(self, length: int) -> Escaped:
        """The first ``length`` characters of the raw text, escaped (never half an escape sequence)."""
        return Escaped(self.raw[:length], self.escape)


def raw_text(value: Any) -> str:
    """The input's own text of ``value`` (an :class:`Escaped` string's raw text, else ``str(value)``)."""
    return value.raw if isinstance(value, Escaped) else str(value)


def safe(value: Any, escape: Escaper) -> str:
    """``value`` escaped by ``escape`` exactly once: an Escaped string of this escaper as it is, anything
    else escaped from its raw text."""
    if isinstance(value, Escaped) and value.escape is escape:
        return value
    return escape(raw_text(value))


def escape_value(value: Any, escape: Escaper) -> Any:
    """Every string in ``value`` (keys of mappings included, nested lists and mappings followed) as an
    :class:`Escaped` string; numbers, booleans and None unchanged."""
    if isinstance(value, str):
        return Escaped(value, escape)
    if isinstance(value, Mapping):
        return {escape_value(key, escape): escape_value(item, escape) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(escape_value(item, escape) for item in value)
    return value


def escape_check(check: Check, escape: Escaper) -> Check:
    """``check`` with its rule, name, metric, reason and operator escaped."""
    texts = {key: getattr(check, key) for key in ("rule", "name", "metric", "reason", "op")}
    return replace(check, **{key: escape_value(text, escape) for key, text in texts.items()})


def escape_report(report: Report, escape: Escaper) -> Report:
    """``report`` with every string from an input escaped (see the module doc); numbers unchanged."""
    conventions = Conventions(
        tuple(
            (escape_value(key, escape), escape_value(item, escape))
            for key, item in report.conventions.items()
        )
    )
    return report.changed(
        checkpoint=escape_value(report.checkpoint, escape),
        features=escape_value(report.features, escape),
        conventions=conventions,
        metrics={escape_value(key, escape): value for key, value in report.metrics.items()},
        targets={escape_value(key, escape): value for key, value in report.targets.items()},
        notes=tuple(escape_value(note, escape) for note in report.notes),
        checks=tuple(escape_check(check, escape) for check in report.checks),
        details=escape_value(report.details, escape),
        label=escape_value(report.label, escape),
        layers=tuple(
            replace(layer, name=Escaped(layer.name, escape), module=Escaped(layer.module, escape))
            for layer in report.layers
        ),
    )


def escaped_view(result: Trajectory, escape: Escaper) -> Trajectory:
    """``result`` with every untrusted string escaped by ``escape``: what a text format's renderer sees."""
    records = tuple(escape_report(record, escape) for record in result)
    return replace(result, records=records, gate=escape_value(result.gate, escape))
