"""``--format json`` / ``--json PATH``: the report or trajectory as strict JSON (report/json_report.py)."""

from __future__ import annotations

import json

from nc_audit.report.formats.base import TextFormat, as_document
from nc_audit.report.json_report import dumps_report
from nc_audit.report.model import Trajectory


def _json_string(value: object) -> str:
    return json.dumps(str(value), ensure_ascii=False)


class JsonFormat(TextFormat):
    name = "json"
    escape = staticmethod(_json_string)  # json.dumps quotes every string; no raw text reaches the file

    def render(self, result: Trajectory) -> str:
        return dumps_report(as_document(result))
