"""``--format markdown`` / ``--markdown PATH``: a GitHub-flavoured summary (report/markdown.py)."""

from __future__ import annotations

from nc_audit.report.escape import markdown_text
from nc_audit.report.formats.base import TextFormat, single
from nc_audit.report.markdown import render_markdown, render_trajectory_markdown
from nc_audit.report.model import Trajectory


class MarkdownFormat(TextFormat):
    name = "markdown"
    escape = staticmethod(markdown_text)

    def render_view(self, view: Trajectory) -> str:
        report = single(view)
        return render_markdown(report) if report is not None else render_trajectory_markdown(view)
