"""`interpolate`'s table, rendered in report/ from the typed experiment-output model: one row per α, the
NC targets last, numbers with four significant digits, every user string escaped."""

from __future__ import annotations

import math
from typing import Any

from nc_audit.report.escape import markdown_text
from nc_audit.report.interpolation import interpolation_markdown, interpolation_table

HOSTILE = "a`b|c\n## injected <b>x</b>.pt"


def document() -> dict[str, Any]:
    records = [
        {
            "alpha": a,
            "accuracy": 0.9 + a / 10,
            "loss": 0.123456,
            "metrics": {"nc1": 0.4 - a / 10, "mir": math.nan},
        }
        for a in (0.0, 0.5, 1.0)
    ]
    return {"a": {"path": HOSTILE}, "b": {"path": "b.pt"}, "data": HOSTILE, "split": HOSTILE,
            "records": records, "targets": {"nc1": 0.0, "mir": 0.952351}}  # fmt: skip


def test_the_table_has_a_row_per_alpha_and_the_targets_last() -> None:
    table = interpolation_table(document(), ["nc1", "mir"])
    assert [column.header for column in table.columns] == ["α", "accuracy", "loss", "nc1", "mir"]
    assert [row[0] for row in table.rows] == [("0",), ("0.5",), ("1",), ("NC target",)]
    assert table.rows[0][2:] == (("0.1235",), ("0.4",), ("—",))  # an undefined MIR is a dash, never a crash
    assert table.rows[-1][3:] == (("0",), ("0.9524",))


def test_the_markdown_heading_and_table_escape_every_user_string() -> None:
    text = interpolation_markdown(document(), ["nc1", "mir"])
    lines = text.splitlines()
    assert lines[0].startswith("## Interpolation `a'b\\|c\\n## injected <b>x</b>.pt` → `b.pt` on ")
    assert not any(line.startswith("## injected") for line in lines)
    assert sum(line.startswith("| ") for line in lines) == 5  # header, three α rows, NC targets
    assert lines[0].endswith(f" \\[{markdown_text(HOSTILE)}]")  # the split, outside code: escaped
    assert "\\<b>" in lines[0]
