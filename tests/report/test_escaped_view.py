"""Escaping in the format interface (issue 20 deliver 3): a text format's renderer only sees the escaped
view of the result, so a new format that escapes nothing itself still lets no input string forge markup,
a heading, a table cell or a terminal sequence; and the built-in renderers escape each string once."""

from __future__ import annotations

import json
import re
from typing import ClassVar

import pytest

from nc_audit.gating.gate import gate
from nc_audit.report.escape import html_text, markdown_text, terminal
from nc_audit.report.formats import registry
from nc_audit.report.formats.base import TextFormat
from nc_audit.report.formats.view import Escaped, escaped_view, raw_text, safe
from nc_audit.report.json_report import dumps_report
from nc_audit.report.model import Report, Trajectory

HOSTILE = "a&b`c\n## injected <script>x</script>\x1b[2J [red]red[/] | cell\r\n::error::forged.pt"


def hostile_run() -> Trajectory:
    record = {
        "schema": "nc-audit-report/1",
        "checkpoint": {"path": f"runs/{HOSTILE}", "sha256": HOSTILE, "head": HOSTILE},
        "features": {
            "path": HOSTILE,
            "split": HOSTILE,
            "num_samples": HOSTILE,
            "feature_dim": 2,
            "num_classes": 2,
        },
        "conventions": {HOSTILE: HOSTILE, "nc4_bias": True},
        "metrics": {"nc1": 0.1, HOSTILE: 0.5},
        "targets": {"nc1": 0.0},
        "notes": [HOSTILE],
        "details": {"nested": [HOSTILE, {HOSTILE: HOSTILE}]},
        "label": HOSTILE,
        "step": 1,
    }
    records = Trajectory.from_records([record, {**record, "step": 2}], "run.jsonl")
    return gate(records, ["nc1<=0.01"], None, 0.0, "all")


class CarelessFormat(TextFormat):
    """A toy format that escapes nothing itself: it pastes every field of every record into its page."""

    name = "careless"
    escape: ClassVar = staticmethod(html_text)

    def render_view(self, view: Trajectory) -> str:
        parts = []
        for record in view:
            parts += [f"<h2>{record.label}</h2>", *(f"<p>{v}</p>" for v in record.checkpoint.values())]
            parts += [f"<p>{v}</p>" for v in record.features.values()]
            parts += [f"<p>{k}={v}</p>" for k, v in record.conventions.items()]
            parts += [f"<li>{note}</li>" for note in record.notes]
            parts += [f"<td>{key}</td>" for key in record.metrics]
            parts += [
                f"<td>{check.rule} {check.name} {check.metric} {check.op}</td>" for check in record.checks
            ]
            parts.append(f"<pre>{record.details}</pre>")
        return "".join(parts)


class CarelessMarkdown(CarelessFormat):
    name = "careless-markdown"
    escape: ClassVar = staticmethod(markdown_text)


def test_a_format_that_escapes_nothing_still_writes_no_markup_from_an_input() -> None:
    text = CarelessFormat().render(hostile_run())
    assert "<script>" not in text and "\x1b" not in text and "\r" not in text and "\n" not in text
    assert html_text(HOSTILE) in text  # every field arrives, escaped for HTML
    assert "&amp;amp;" not in text  # once


def test_a_markdown_format_that_escapes_nothing_forges_no_heading_or_line() -> None:
    text = CarelessMarkdown().render(hostile_run())
    assert "\n" not in text and "\r" not in text  # one line: no "## injected" heading, no "::error::" line
    assert not re.search(r"(?<!\\)`", text)  # no code span opened by the input
    assert markdown_text(HOSTILE) in text


def test_the_view_keeps_numbers_and_the_raw_text() -> None:
    view = escaped_view(hostile_run(), terminal)
    record = view[0]
    assert record.metrics["nc1"] == 0.1 and record.step == 1 and record.conventions["nc4_bias"] is True
    label = record.label
    assert isinstance(label, Escaped) and raw_text(label) == HOSTILE and label == terminal(HOSTILE)
    assert safe(label, terminal) is label  # never escaped twice
    assert safe(label, html_text) == html_text(HOSTILE)  # another format escapes from the raw text
    sha = record.checkpoint["sha256"]
    assert isinstance(sha, Escaped) and sha.cut(12) == terminal(HOSTILE[:12])


@pytest.mark.parametrize("name", ["markdown", "html", "table", "junit"])
def test_builtin_formats_escape_an_ampersand_once(name: str) -> None:
    report = Report.from_dict(
        {"schema": "nc-audit-report/1", "metrics": {"nc1": 0.1}, "label": "a&b <c>"}, "r.json"
    )
    text = registry.text_format(name).render(gate(Trajectory.of(report), ["nc1 <= 0.5"]))
    assert "&amp;amp;" not in text and "&amp;lt;" not in text
    if name == "html":
        assert "a&amp;b &lt;c&gt;" in text and "nc1 &lt;= 0.5" in text
    if name == "junit":
        assert 'name="nc1 &lt;= 0.5"' in text


def test_json_is_the_result_as_it_is() -> None:
    run = hostile_run()
    text = registry.text_format("json").render(run)
    assert text == dumps_report(run.to_dict())
    assert json.loads(text)["records"][0]["label"] == HOSTILE


def test_console_pieces_side_by_side_form_no_rich_tag() -> None:
    """``a[bold`` and ``x]`` are each harmless; printed side by side they made the tag ``[bold: x]`` and the
    text vanished (a ``[link=…]`` would have become a terminal hyperlink)."""
    report = Report.from_dict(
        {"schema": "nc-audit-report/1", "metrics": {"nc1": 0.1}, "conventions": {"a[bold": "x]", "k[link=e": "v]"},
         "label": "run[v2.pt"}, "r.json")  # fmt: skip
    text = registry.text_format("table").render(gate(Trajectory.of(report), ["nc1 <= 0.5"]))
    assert "conventions: a[bold: x]; k[link=e: v]" in text
    assert "\\[" not in text  # the escapes never show
