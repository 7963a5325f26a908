"""Issue 21 item 6 (render): the line `measure`/`track` print when their gates come from [tool.nc-audit]
names paths from the pull request's pyproject.toml; it must stay one line of visible characters."""

from __future__ import annotations

import json
from pathlib import Path

from generate import FORGED, SAMPLES, Case, case


@case
def case_render_project_gates_line_forged(root: Path) -> Case:
    baseline = root / f"base{FORGED}.json"
    report = {
        "schema": "nc-audit-report/1",
        "features": {"num_classes": 10},
        "metrics": {"nc1": 0.002236, "nc4": 0.0},
        "targets": {"nc1": 0.0, "nc4": 0.0},
    }
    baseline.write_text(json.dumps(report), encoding="utf-8")
    settings = {"fail-on": ["nc1 <= 1e9"], "baseline": baseline.name, "tolerance": 1e6}
    lines = ["[tool.nc-audit]", *(f"{key} = {json.dumps(value)}" for key, value in settings.items())]
    (root / "pyproject.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    pt, h5 = SAMPLES / "epoch_0300.pt", SAMPLES / "epoch_0300.h5"
    return Case(
        "render_project_gates_line_forged", 2,
        "a pyproject.toml whose [tool.nc-audit] baseline is a file named with ESC sequences, BEL and a newline "
        "forging 'PASS nc1 <= 0.5': measure and track announce the project's gates on stderr as one visible line",
        [["measure", str(pt), "--features", str(h5), "--no-progress", "--device", "cpu"],
         ["track", str(pt), "--no-progress", "--device", "cpu"]],
        "ok", extra={"no_control_chars": True, "no_forged_line": True},
    )  # fmt: skip
