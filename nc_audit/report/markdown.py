"""GitHub-flavoured Markdown summaries of a report or a trajectory (for PR comments and step summaries).

Renders the plain JSON form of a report (schema ``nc-audit-report/1``); computes nothing but the
distance |value − target| it displays.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.report.escape import markdown_cell, markdown_code, markdown_text
from nc_audit.report.model import record_label
from nc_audit.report.numbers import UNDEFINED, as_number, half_widths, short, with_error

PASS, FAIL = "✅", "❌"

#: Columns of the trajectory table, in order, when present in any record.
TRAJECTORY_COLUMNS = (
    "nc1",
    "nc1_cdnv",
    "nc2_equinorm_means",
    "nc2_equiangular_means",
    "nc2_maxangle_means",
    "nc3",
    "nc4",
    "h_means",
    "mi",
    "mir",
    "hdr",
    "acc_train",
    "acc_test",
)


class _Code(str):
    """Inline code already escaped by :func:`_code`: a table cell takes it as it is."""


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return text if isinstance(text, _Code) else markdown_cell(text)


def _code(text: Any) -> str:
    """Inline code that survives backticks, pipes and control characters in the text."""
    return _Code(markdown_code(text))


def _row(cells: Iterable[Any]) -> str:
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "---:") -> list[str]:
    """A Markdown table: first column left-aligned, the others aligned by ``align``."""
    lines = [_row(header), "| " + " | ".join(["---", *[align] * (len(header) - 1)]) + " |"]
    lines.extend(_row(row) for row in rows)
    return lines


def _passed(report: Mapping[str, Any]) -> bool:
    """The report's verdict, from ``passed`` or else from its checks."""
    if "passed" in report:
        return bool(report["passed"])
    return all(bool(check.get("passed")) for check in report.get("checks", []))


def _verdict_line(passed: bool, checks: Sequence[Mapping[str, Any]]) -> str:
    failed = sum(not check.get("passed") for check in checks)
    counts = f" ({len(checks) - failed} of {len(checks)} checks passed)" if checks else " (no checks)"
    return f"**Verdict: {PASS} passed**{counts}" if passed else f"**Verdict: {FAIL} failed**{counts}"


def _check_lines(checks: Sequence[Mapping[str, Any]], with_label: bool = False) -> list[str]:
    """A table of checks: ✅/❌, rule, value, baseline or reason."""
    header = ["", *(["checkpoint"] if with_label else []), "rule", "value", "detail"]
    rows = []
    for check in checks:
        detail = check.get("reason") or (
            "baseline " + short(check["baseline"]) if "baseline" in check else ""
        )
        label = [check.get("label", "")] if with_label else []
        rows.append(
            [
                PASS if check.get("passed") else FAIL,
                *label,
                check.get("rule", ""),
                short(check.get("value")),
                detail,
            ]
        )
    return _table(header, rows, align="---")


def _context_line(report: Mapping[str, Any]) -> str:
    """Checkpoint, head and features in one line."""
    checkpoint = report.get("checkpoint") or {}
    features = report.get("features") or {}
    parts = []
    if checkpoint.get("head"):
        parts.append(f"head {_code(checkpoint['head'])}")
    if checkpoint.get("sha256"):
        parts.append(f"sha256 {_code(str(checkpoint['sha256'])[:12])}")
    if features.get("path"):
        split = f" ({markdown_text(features['split'])})" if features.get("split") else ""
        parts.append(f"features {_code(features['path'])}{split}")
    sizes = [
        f"{sym} = {features[key]}"
        for sym, key in (("N", "num_samples"), ("d", "feature_dim"), ("C", "num_classes"))
        if key in features
    ]
    if sizes:
        parts.append(", ".join(sizes))
    return " · ".join(parts)


def render_markdown(report: Mapping[str, Any]) -> str:
    """A Markdown summary of one report: metric | value | NC target | distance, conventions, notes, checks, verdict."""
    checkpoint = report.get("checkpoint") or {}
    name = report.get("label") or checkpoint.get("path") or "report"
    passed = _passed(report)
    lines = [f"## nc-audit: {_code(name)} {PASS if passed else FAIL}", ""]
    context = _context_line(report)
    if context:
        lines += [context, ""]
    metrics: Mapping[str, Any] = report.get("metrics") or {}
    targets: Mapping[str, Any] = report.get("targets") or {}
    rows = []
    errors = half_widths(dict(report))  # 95% half-widths of SLQ estimates (MI, MIR)
    for key, value in metrics.items():
        number, target = as_number(value), as_number(targets.get(key))
        distance = abs(number - target) if number is not None and target is not None else None
        rows.append([key, with_error(short(value), key, errors), short(target), short(distance)])
    lines += [*_table(["metric", "value", "NC target", "distance"], rows), ""]
    conventions: Mapping[str, Any] = report.get("conventions") or {}
    if conventions:
        text = " · ".join(
            f"{markdown_text(key)} = {markdown_text(_json_scalar(value))}"
            for key, value in conventions.items()
        )
        lines += [f"Conventions: {text}", ""]
    notes = report.get("notes") or []
    if notes:
        lines += ["**Notes**", "", *[f"- {markdown_text(note)}" for note in notes], ""]
    checks = report.get("checks") or []
    if checks:
        lines += ["**Checks**", "", *_check_lines(checks), ""]
    lines.append(_verdict_line(passed, checks))
    return "\n".join(lines) + "\n"


def _json_scalar(value: Any) -> str:
    """Booleans and null as JSON spells them (true/false/null), everything else as str."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def render_trajectory_markdown(traj: Mapping[str, Any]) -> str:
    """A Markdown summary of a trajectory: one row per checkpoint with the main metrics, then failed checks."""
    records: Sequence[Mapping[str, Any]] = traj.get("records") or []
    passed = all(_passed(record) for record in records)
    lines = [f"## nc-audit trajectory: {len(records)} checkpoints {PASS if passed else FAIL}", ""]
    columns = [key for key in TRAJECTORY_COLUMNS if any(key in (r.get("metrics") or {}) for r in records)]
    targets: dict[str, Any] = {}
    for record in records:
        targets.update(record.get("targets") or {})
    rows = [["NC target", "", *[short(targets.get(key)) for key in columns], ""]]
    for index, record in enumerate(records):
        metrics = record.get("metrics") or {}
        step = record.get("step")
        label = record_label(record, index)
        status = UNDEFINED if record.get("gated") is False else PASS if _passed(record) else FAIL
        rows.append(
            [
                _code(label),
                "" if step is None else step,
                *[short(metrics.get(key)) for key in columns],
                status,
            ]
        )
    lines += [*_table(["checkpoint", "step", *columns, "checks"], rows), ""]
    failed = [
        {**check, "label": check.get("label") or record_label(record)}
        for record in records
        for check in record.get("checks") or []
        if not check.get("passed")
    ]
    if failed:
        lines += ["**Failed checks**", "", *_check_lines(failed, with_label=True), ""]
    all_checks = [check for record in records for check in record.get("checks") or []]
    lines.append(_verdict_line(passed, all_checks))
    return "\n".join(lines) + "\n"


def append_step_summary(markdown: str) -> None:
    """Append ``markdown`` to the file named by $GITHUB_STEP_SUMMARY, if set (never overwrites it).

    Appending (not an atomic replace) is what GitHub Actions documents for this file, which other
    steps' output shares. Raises InputError when the file cannot be written.
    """
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(markdown if markdown.endswith("\n") else markdown + "\n")
    except OSError as exc:
        raise InputError(
            f"{path} (GITHUB_STEP_SUMMARY): cannot append the summary ({exc.strerror or exc})"
        ) from exc
