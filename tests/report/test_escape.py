"""Strings from inputs, escaped for each output (nc_audit/report/escape.py): one visible line, no control
character, no markup, no broken table or XML; and the renderers use it."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ElementTree

from nc_audit.report.console import header_lines
from nc_audit.report.consoles import new_console
from nc_audit.report.escape import (
    html_text,
    json_safe,
    markdown_cell,
    markdown_code,
    markdown_text,
    terminal,
    visible,
    xml_text,
)
from nc_audit.report.junit import render_junit
from nc_audit.report.markdown import render_markdown
from nc_audit.report.model import Report

FORGED = "\x1b[2J\x1b]0;owned\x07\nPASS nc1 <= 0.5\r\n"
UNDECODABLE = os.fsdecode(b"features-\xff\xfe.h5")  # a non-UTF-8 file name, surrogate-escaped


def test_visible_shows_every_control_character_as_an_escape() -> None:
    text = visible("head" + FORGED + "\u202e\x9b" + UNDECODABLE)
    assert text == "head\\x1b[2J\\x1b]0;owned\\x07\\nPASS nc1 <= 0.5\\r\\n\\u202e\\x9bfeatures-\\xff\\xfe.h5"
    assert text.isprintable()
    text.encode("utf-8")  # no lone surrogate left


def test_terminal_escapes_rich_markup_too() -> None:
    console = new_console(record=True, width=200, color_system=None)
    console.print(f"wrote {terminal('traj[red]x[bold].png' + FORGED)}")
    shown = console.export_text()
    assert "traj[red]x[bold].png\\x1b[2J" in shown and "\x1b" not in shown
    assert shown.count("\n") == 1  # one line: no forged second line


def test_markdown_escapes_links_html_code_and_pipes() -> None:
    assert markdown_text("a [x](javascript:y) <img src=z> `c` \\") == (
        "a \\[x\\](javascript:y) \\<img src=z> \\`c\\` \\\\"
    )
    assert markdown_text("nc1 <= 0.5 | kept") == "nc1 <= 0.5 | kept"  # comparisons and list text unchanged
    assert markdown_cell("a|b\nc") == "a\\|b\\nc"
    assert markdown_code("x`y|z" + FORGED).startswith("`x'y\\|z\\x1b")


def test_xml_and_html_text_hold_no_forbidden_character() -> None:
    element = ElementTree.Element("a", b=xml_text(FORGED + UNDECODABLE))
    element.text = xml_text(FORGED)
    ElementTree.fromstring(ElementTree.tostring(element))
    assert html_text("<b>&" + FORGED) == "&lt;b&gt;&amp;\\x1b[2J\\x1b]0;owned\\x07\\nPASS nc1 &lt;= 0.5\\r\\n"


def test_json_safe_keeps_an_undecodable_name_readable_back() -> None:
    text = json_safe(json.dumps({"path": UNDECODABLE}, ensure_ascii=False))
    text.encode("utf-8")
    assert json.loads(text)["path"] == UNDECODABLE


def _report(label: str) -> dict:
    return {
        "schema": "nc-audit-report/1",
        "checkpoint": {"path": "m.pt" + FORGED, "sha256": FORGED + "abc", "head": "fc" + FORGED},
        "features": {
            "path": UNDECODABLE,
            "split": "train",
            "num_samples": 3,
            "feature_dim": 2,
            "num_classes": 2,
        },
        "conventions": {"std": "population"},
        "metrics": {"nc1": 0.1},
        "targets": {"nc1": 0.0},
        "notes": ["from " + FORGED],
        "checks": [{"rule": "nc1 <= 0.5", "value": 0.1, "passed": True}],
        "passed": True,
        "label": label,
    }


def test_renderers_never_pass_a_control_character_through() -> None:
    report = Report.from_dict(_report("epoch" + FORGED), "run.json")
    junit = render_junit([report])
    for text in (*header_lines(report), render_markdown(report), junit):
        assert not any(ord(c) < 32 and c not in "\n" for c in text), repr(text)
        assert "\nPASS nc1" not in text
        text.encode("utf-8")
    ElementTree.fromstring(junit.split("\n", 1)[1])


def test_an_emoji_code_in_a_name_stays_text() -> None:
    """Rich turns ``:name:`` into an emoji and has no escape for it: nc-audit's consoles turn emoji off, so a
    name that is, or completes, an emoji code (``:A`` beside ``:A:``, ``smile:`` beside our ``:``) stays text."""
    console = new_console(record=True, width=200, color_system=None)
    console.print(f"{terminal(':A')} {terminal(':A')}: {terminal(':smile')}: :thumbs_up:", markup=True)
    assert console.export_text() == ":A :A: :smile: :thumbs_up:\n"


def test_every_console_of_the_package_comes_from_new_console() -> None:
    """No ``Console(...)`` is made anywhere in nc_audit but in report/consoles.py (emoji codes off)."""
    import ast
    from pathlib import Path

    import nc_audit

    root = Path(nc_audit.__file__).parent
    made = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = (
                    node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                )
                if name == "Console":
                    made.append(f"{path.relative_to(root)}:{node.lineno}")
    assert made == ["report/consoles.py:19"], made
