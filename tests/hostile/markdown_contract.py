"""What a Markdown page written from hostile names must look like (cases_expout.py, tests/report/): the
input did not open a heading, a table row or cell, a code span, HTML, or a new line.

Nothing here imports nc_audit: it reads text as a Markdown reader would.
"""

from __future__ import annotations

import re
from typing import Any

#: Characters that break a line or the terminal: C0 (tab and newline aside), DEL, C1, U+2028/U+2029.
RAW_BREAK = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")
_HTML_TAG = re.compile(r"(?<!\\)<[A-Za-z/!?]")


def _outside_code(line: str) -> tuple[str, bool]:
    """The text of ``line`` outside its code spans (whose text is literal: HTML in one is shown, a backslash
    escapes nothing), and whether a span is left open. Outside a span, a backslash escapes a backtick."""
    outside, inside, index = [], False, 0
    while index < len(line):
        char = line[index]
        if char == "\\" and not inside:
            outside.append(line[index : index + 2])
            index += 2
            continue
        if char == "`":
            inside = not inside
        elif not inside:
            outside.append(char)
        index += 1
    return "".join(outside), inside


def assert_clean_markdown(text: str, headings: int = 1) -> None:
    """``headings`` heading lines (the first line is one), no raw control character or line separator, no
    HTML tag, every code span closed on its line, and every table line with the header's cells."""
    found = RAW_BREAK.search(text)
    assert found is None, f"a raw {found.group()!r} in the Markdown"
    lines = text.split("\n")
    titles = [line for line in lines if line.lstrip().startswith("#")]
    assert len(titles) == headings and lines[0].startswith("# "), f"headings: {titles}"
    for line in lines:
        outside, open_span = _outside_code(line)
        assert not open_span, f"a code span left open in {line[:200]!r}"
        assert _HTML_TAG.search(outside) is None, f"an HTML tag opens in {line[:200]!r}"
        assert not re.match(r"\s*([>+*=~-]|\d+[.)])\s", line) or line.startswith("- "), (
            f"an input opened a block: {line[:200]!r}"
        )
    tables = [line for line in lines if line.startswith("|")]
    if tables:
        cells = len(_UNESCAPED_PIPE.findall(tables[0]))
        for line in tables:
            assert len(_UNESCAPED_PIPE.findall(line)) == cells, (
                f"a table row with other cells: {line[:200]!r}"
            )


def assert_clean_console(text: str) -> None:
    """No raw control character or line separator on stdout/stderr (each escaped)."""
    found = RAW_BREAK.search(text)
    assert found is None, f"a raw {found.group()!r} on the console"


def check_outputs(result: Any, pages: list[str], stdout_is_markdown: bool) -> None:
    """A hostile corpus run (test_corpus.CaseResult): each page written and clean, the console clean."""
    for rel in pages:
        assert rel in result.outputs, f"{rel} was not written"
        assert_clean_markdown(result.outputs[rel].decode("utf-8"))
    for run in result.runs:
        assert_clean_console(run.stdout + run.stderr)
        if stdout_is_markdown:
            assert_clean_markdown(run.stdout)
