"""Issue 20/21 (types2): a monitor run's own gates. ``track run.jsonl`` given no gates of its own holds the
run to the checks its records carry (gating/recorded.py), each threshold evaluated again from its rule:
a record that claims to pass a rule its numbers fail must fail the job, and a recorded rule that cannot be
read is one line naming the file (never a traceback, never a silent pass)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from generate import Case, case, report_record


def _record(step: int, checks: list[dict[str, Any]]) -> dict[str, Any]:
    """A monitor record (nc-audit-report/1 with step and label) whose nc1 is 0.2 and that carries ``checks``."""
    record = {**report_record({"nc1": 0.2, "accuracy": 0.5}), "step": step, "label": "run"}
    record["checkpoint"] = {"path": None, "sha256": None, "head": "monitor"}
    record["targets"] = {"nc1": 0.0}
    return {**record, "checks": checks, "passed": all(check["passed"] for check in checks)}


def _check(rule: str, passed: bool) -> dict[str, Any]:
    return {"rule": rule, "name": rule, "metric": "nc1", "value": 0.2, "op": "<=", "threshold": 0.05,
            "passed": passed}  # fmt: skip


def _run(root: Path, name: str, rule: str, passed: bool) -> Path:
    path = root / f"{name}.jsonl"
    records = [_record(0, []), _record(1, [_check(rule, passed)])]
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


@case
def case_types2_jsonl_forged_pass(root: Path) -> Case:
    run = _run(root, "forged", "nc1 <= 0.05", passed=True)
    return Case(
        "types2_jsonl_forged_pass", 9,
        "a monitor .jsonl whose last record claims to pass 'nc1 <= 0.05' with nc1 = 0.2, tracked without gates "
        "(exit 0, its checks dropped, before): the rule evaluated again, exit 1",
        [["track", str(run), "--format", "json", "--no-progress"]],
        "gate", extra={"failed_rules": ["nc1 <= 0.05"]},
    )  # fmt: skip


@case
def case_types2_jsonl_unknown_rule(root: Path) -> Case:
    run = _run(root, "unknown_rule", "nosuch <= 1\n## injected", passed=False)
    return Case(
        "types2_jsonl_unknown_rule", 9,
        "a monitor .jsonl whose recorded check holds a rule naming no metric, with a newline and a Markdown "
        "heading in it: one line naming the file, the record and the metric",
        [["track", str(run), "--no-progress"]],
        "error", culprits=[run.name], fragments=["record 1", "nosuch"],
    )  # fmt: skip
