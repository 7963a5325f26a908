"""JSON output of reports (schemas nc-audit-report/1 and nc-audit-trajectory/1)."""

from __future__ import annotations

import json
from typing import Any

from nc_audit.report.escape import json_safe


def dumps_report(data: dict[str, Any]) -> str:
    """Pretty, strict JSON (no NaN: non-finite values are already null in the report's dict form); a
    non-UTF-8 file name's undecodable bytes are written as ``\\udcXX`` escapes (report/escape.py)."""
    return json_safe(json.dumps(data, indent=2, allow_nan=False, ensure_ascii=False)) + "\n"
