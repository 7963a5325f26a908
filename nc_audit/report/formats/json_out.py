"""``--format json`` / ``--json PATH``: the report or trajectory as strict JSON (report/json_report.py)."""

from __future__ import annotations

from nc_audit.report.formats.base import TextFormat
from nc_audit.report.json_report import dumps_report
from nc_audit.report.model import Trajectory


def _serialised(value: object) -> str:
    """JSON keeps every string as it is: ``json.dumps`` quotes and escapes each one (no raw text reaches
    the file), and a reader must get back the very path or label the run saw."""
    return str(value)


class JsonFormat(TextFormat):
    name = "json"
    escape = staticmethod(_serialised)

    def render_view(self, view: Trajectory) -> str:
        return dumps_report(view.to_dict())
