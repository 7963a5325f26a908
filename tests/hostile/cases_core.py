"""Round 2, issue 20 (typed results): baselines and monitor trajectories are read into typed reports, every
part checked for its type. A baseline record's label that is a list ended in 'TypeError: unhashable type'
naming no file; a string checkpoint or step, or checks that are not a list, were accepted unchecked.
Each must now be one line naming the file and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from generate import Case, case, copy_sample, report_record


def _record(step: int, **changes: Any) -> dict[str, Any]:
    """A monitor record (nc-audit-report/1 with step and label) with ``changes``."""
    record = {**report_record({"nc1": 0.1 * (step + 1), "accuracy": 0.5}), "step": step, "label": "run"}
    record["checkpoint"] = {"path": None, "sha256": None, "head": "monitor"}
    record["targets"] = {"nc1": 0.0}
    return {**record, **changes}


def _jsonl(root: Path, name: str, records: list[dict[str, Any]]) -> Path:
    path = root / f"{name}.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def _trajectory_baseline(root: Path, name: str, records: list[dict[str, Any]]) -> Path:
    path = root / f"{name}.json"
    path.write_text(json.dumps({"schema": "nc-audit-trajectory/1", "records": records}))
    return path


@case
def case_core_baseline_label_list(root: Path) -> Case:
    run = _jsonl(root, "run", [_record(0), _record(1)])
    baseline = _trajectory_baseline(root, "label_list", [_record(0, label=["run"]), _record(1)])
    return Case(
        "core_baseline_label_list", 9,
        "a trajectory baseline whose record label is a list ('TypeError: unhashable type' before): one line "
        "naming the baseline and 'label'",
        [["track", str(run), "--gate", "all", "--baseline", str(baseline), "--no-progress"]],
        "error", culprits=[baseline.name], fragments=["'label'"],
    )  # fmt: skip


@case
def case_core_jsonl_checkpoint_string(root: Path) -> Case:
    run = _jsonl(root, "checkpoint_string", [_record(0, checkpoint="x.pt"), _record(1)])
    return Case(
        "core_jsonl_checkpoint_string", 9,
        "a monitor .jsonl whose record's checkpoint is a string (accepted unchecked before): "
        "one line naming the file and 'checkpoint'",
        [["track", str(run), "--fail-on", "nc1<=1", "--no-progress"]],
        "error", culprits=[run.name], fragments=["'checkpoint'"],
    )  # fmt: skip


@case
def case_core_jsonl_step_string(root: Path) -> Case:
    run = _jsonl(root, "step_string", [_record(0), {**_record(1), "step": "1; rm -rf /"}])
    return Case(
        "core_jsonl_step_string", 9,
        "a monitor .jsonl whose record's step is a string (accepted unchecked before): one line naming the file and 'step'",
        [["track", str(run), "--gate", "all", "--fail-on", "nc1<=1", "--no-progress"]],
        "error", culprits=[run.name], fragments=["'step'"],
    )  # fmt: skip


@case
def case_core_baseline_checks_not_a_list(root: Path) -> Case:
    _, h5 = copy_sample(root)
    baseline = root / "checks_object.json"
    baseline.write_text(json.dumps({**report_record({"nc1": 0.1}), "checks": {"passed": True}}))
    return Case(
        "core_baseline_checks_not_a_list", 9,
        "a report baseline whose checks are an object, not a list (accepted unchecked before): one line naming the baseline and 'checks'",
        [["measure", str(h5), "--baseline", str(baseline), "--no-progress"]],
        "error", culprits=[baseline.name], fragments=["'checks'"],
    )  # fmt: skip
