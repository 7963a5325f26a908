"""The HTML report (nc_audit/report/html.py), read back by parsing it: one self-contained file (inline
PNGs, nothing fetched), the tables, conventions, notes and checks, every input string escaped.
"""

from __future__ import annotations

import math
from typing import Any

from runs import parse_html as parse

from nc_audit.gating.rules import evaluate_rules, parse_rules
from nc_audit.report.html import finetune_html
from nc_audit.report.html import report_html as report_typed
from nc_audit.report.html import trajectory_html as trajectory_typed
from nc_audit.report.model import Report, Trajectory

HOSTILE = '<script>alert("x")</script>&amp;'
MIR_NC = 0.952351


def record(label: str, step: int | None, nc1: float, rules: tuple[str, ...] = ()) -> dict[str, Any]:
    metrics = {"nc1": nc1, "nc3": 0.2, "nc4": 0.01, "mir": 0.87, "hdr": 0.1}
    checks = [check.to_dict() for check in evaluate_rules(metrics, parse_rules(rules))]
    return {
        "schema": "nc-audit-report/1",
        "checkpoint": {"path": f"runs/{label}", "sha256": "ab" * 32, "head": "fc"},
        "features": {
            "path": "f.h5",
            "split": "train",
            "num_samples": 100,
            "feature_dim": 8,
            "num_classes": 10,
        },
        "conventions": {"global_mean": "sample-weighted", "nc4_bias": True},
        "metrics": metrics,
        "targets": {"nc1": 0.0, "nc3": 0.0, "nc4": 0.0, "mir": MIR_NC, "hdr": 0.0},
        "notes": [f"a note about {HOSTILE}"],
        "checks": checks,
        "passed": all(check["passed"] for check in checks),
        "details": {"accuracy": 0.99, "ncc_accuracy": 0.98},
        "step": step,
        "label": label,
    }


def report_html(report: dict[str, Any]) -> str:
    return report_typed(Report.from_dict(report, "run.json"))


def trajectory_html(trajectory: dict[str, Any]) -> str:
    records = tuple(Report.from_dict(record, "run.json") for record in trajectory["records"])
    return trajectory_typed(Trajectory(records, gate=trajectory.get("gate")))


def test_a_report_page_holds_every_table_the_plot_and_escapes_its_inputs() -> None:
    report = record(HOSTILE, None, 0.38, ("nc1<=0.2", "mir>=0.5"))
    text = report_html(report)
    page = parse(text)
    assert HOSTILE in "".join(page.text)  # shown as text, never as markup
    assert "<script>" not in text
    assert page.row("nc1")[:4] == ["nc1", "0.38", "0", "0.38"]
    assert page.row("mir")[:4] == ["mir", "0.87", "0.952351", "0.082351"]
    assert page.row("global_mean") == ["global_mean", "sample-weighted"]
    assert page.row("checkpoint") == ["checkpoint", f"runs/{HOSTILE}"]
    assert page.row("✗ FAIL") == ["✗ FAIL", "nc1 <= 0.2", "nc1 = 0.38, required <= 0.2"]
    assert page.row("✓ pass")[1] == "mir >= 0.5"
    assert len(page.named("img")) == 1
    assert f"a note about {HOSTILE}" in page.text
    assert "1 of 2 checks failed" in page.text


def test_a_trajectory_page_has_a_row_per_checkpoint_the_targets_and_the_gated_checks() -> None:
    records = [record(f"epoch_{s}.pt", s, 1.0 / s) for s in (1, 2)]
    records.append(record("epoch_3.pt", 3, 0.3, ("nc1<=0.5",)))
    for item in records:
        item["gated"] = item["label"] == "epoch_3.pt"
    page = parse(trajectory_html({"schema": "nc-audit-trajectory/1", "records": records, "gate": "last"}))
    assert [row[0] for row in page.rows[1:]][:4] == ["epoch_1.pt", "epoch_2.pt", "epoch_3.pt", "NC target"]
    assert page.row("epoch_3.pt")[-1] == "✓" and page.row("epoch_1.pt")[-1] == "—"
    assert page.row("NC target")[page.rows[0].index("mir")] == "0.9524"
    assert page.row("✓ pass")[:3] == ["✓ pass", "epoch_3.pt", "nc1 <= 0.5"]
    assert "the last checkpoint is gated (--gate last)" in page.text
    assert [note for note in page.text if note.startswith("a note")] == [f"a note about {HOSTILE}"]  # once


def test_a_finetune_page_has_before_after_history_and_settings() -> None:
    history = [{"epoch": e, "loss": None if e == 0 else 0.5 / e, "train_accuracy": 0.9, "nc1": 0.4 - e / 10,
                "mir": 0.86, "hdr": 0.1} for e in (0, 1, 2)]  # fmt: skip
    document = {
        "settings": {"data": HOSTILE, "cma_weight": 0.1},
        "history": history,
        "rows": [["NC1", 0.4, 0.2], ["loss", None, 0.25]],
        "final_path": "runs/ft/final.pt",
        "notes": [],
    }
    page = parse(finetune_html(document))
    assert page.row("NC1") == ["NC1", "0.4", "0.2"] and page.row("loss") == ["loss", "—", "0.25"]
    assert page.row("data") == ["data", HOSTILE]
    assert [row[0] for row in page.rows if row and row[0] in ("0", "1", "2")] == ["0", "1", "2"]
    assert "runs/ft/final.pt" in page.text
    assert len(page.named("img")) == 1


def test_undefined_values_render_as_a_dash() -> None:
    report = record("x", None, math.nan)
    report["metrics"]["mir"] = None
    page = parse(report_html(report))
    assert page.row("mir")[1:4] == ["—", "0.952351", "—"]


def test_the_trajectory_badge_is_the_verdict_of_the_gated_checks() -> None:
    records = [record("epoch_1.pt", 1, 1.0), record("epoch_2.pt", 2, 0.3, ("nc1<=0.2",))]
    for item in records:
        item["gated"] = item["label"] == "epoch_2.pt"
    failed = parse(trajectory_html({"schema": "nc-audit-trajectory/1", "records": records, "gate": "last"}))
    assert ("span", {"class": "fail"}) in failed.tags and ("span", {"class": "pass"}) not in failed.tags
    records[-1] = record("epoch_2.pt", 2, 0.1, ("nc1<=0.2",))
    records[-1]["gated"] = True
    passed = parse(trajectory_html({"schema": "nc-audit-trajectory/1", "records": records, "gate": "last"}))
    assert ("span", {"class": "pass"}) in passed.tags and ("span", {"class": "fail"}) not in passed.tags
