"""Property (issue 20, experiment output): whatever a name holds — any Unicode, lone surrogates, control
characters, Markdown and Rich syntax — the pages of prune, the studies and the demo keep their structure
(one heading, tables with their columns, no HTML, code spans closed, no raw line break) and the console
line stays one escaped line."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_contract import assert_clean_console, assert_clean_markdown

from nc_audit.report.consoles import new_console
from nc_audit.report.tables import Bullets, Code, Column, Number, Page, Paragraph, Spread, Table
from nc_audit.report.tables_console import console_text
from nc_audit.report.tables_markdown import page_text

#: Any code point (surrogates included: undecodable bytes of a file name), weighted towards the syntax.
NAMES = st.text(
    st.one_of(
        st.characters(blacklist_categories=()), st.sampled_from(list("#|`<>[]()!*_-+=~\\$\n\r\t\x1b\u2028"))
    ),
    max_size=60,
)


def _page(name: str) -> Page:
    table = Table(
        (Column("name"), Column("value"), Column("mean ± std", "default")),
        (
            ((name,), (Number(0.5),), (Spread(0.25, 0.01, 3),)),
            ((Code(name),), (name, " ", Number(None)), (name,)),
        ),
    )
    return Page(
        ("Pruning of ", Code(name), " on ", name),
        (Paragraph((name, " starts a paragraph")), Bullets(((name,), ("x ", Code(name)))), table),
    )


@settings(max_examples=300, deadline=None)
@given(NAMES)
def test_no_name_changes_a_pages_structure(name: str) -> None:
    text = page_text(_page(name))
    assert_clean_markdown(text)
    # title, blank, paragraph, blank, 2 bullets, blank, 2 + 2 table lines, and the last newline
    assert len(text.split("\n")) == 12


@settings(max_examples=300, deadline=None)
@given(NAMES)
def test_a_console_line_stays_one_escaped_line(name: str) -> None:
    out = io.StringIO()
    new_console(file=out, width=100_000, highlight=False, color_system=None).print(
        console_text(("[1/2] ", name, " ", Code(name), ": ", Number(0.5))), markup=True
    )
    assert_clean_console(out.getvalue())
    assert out.getvalue().startswith("[1/2] ") and out.getvalue().endswith(": 0.5000\n")
    assert out.getvalue().count("\n") == 1
