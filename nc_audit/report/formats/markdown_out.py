"""``--format markdown`` / ``--markdown PATH``: a GitHub-flavoured summary (report/markdown.py)."""

from __future__ import annotations

from nc_audit.report.escape import markdown_text
from nc_audit.report.formats.base import TextFormat, as_document, single
from nc_audit.report.markdown import render_markdown, render_trajectory_markdown
from nc_audit.report.model import Trajectory


class MarkdownFormat(TextFormat):
    name = "markdown"
    escape = staticmethod(markdown_text)

    def render(self, result: Trajectory) -> str:
        document = as_document(result)
        return (
            render_markdown(document) if single(result) is not None else render_trajectory_markdown(document)
        )
