"""``--html PATH``: one self-contained HTML page, plots inlined (report/html.py)."""

from __future__ import annotations

from nc_audit.report.escape import html_text
from nc_audit.report.formats.base import TextFormat, single
from nc_audit.report.model import Trajectory


class HtmlFormat(TextFormat):
    name = "html"
    escape = staticmethod(html_text)
    announce = True

    def render_view(self, view: Trajectory) -> str:
        from nc_audit.report.html import report_html, trajectory_html

        report = single(view)
        return report_html(report) if report is not None else trajectory_html(view)
