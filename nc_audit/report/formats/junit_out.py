"""``--junit PATH``: one JUnit test case per rule and checkpoint (report/junit.py)."""

from __future__ import annotations

from nc_audit.report.escape import xml_text
from nc_audit.report.formats.base import TextFormat
from nc_audit.report.junit import render_junit
from nc_audit.report.model import Trajectory


class JunitFormat(TextFormat):
    name = "junit"
    escape = staticmethod(xml_text)

    def render_view(self, view: Trajectory) -> str:
        return render_junit([view])
