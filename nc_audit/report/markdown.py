"""GitHub-flavoured Markdown summaries of a report or a trajectory (for PR comments and step summaries).

Renders the typed :class:`~nc_audit.report.model.Report` and :class:`~nc_audit.report.model.Trajectory`
(the Markdown format hands over its escaped view; every string from an input is escaped here once more
only from its raw text, for its context: a line, a table cell or a code span); computes nothing but the
distance |value − target| it displays.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.report.escape import markdown_cell, markdown_code, markdown_text
from nc_audit.report.formats.view import raw_text, safe
from nc_audit.report.model import Check, Report, Trajectory, record_label
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
    """Text safe inside a Markdown table cell (escaped once, from the raw text)."""
    return text if isinstance(text, _Code) else markdown_cell(raw_text(text))


def _code(text: Any) -> str:
    """Inline code that survives backticks, pipes and control characters in the text."""
    return _Code(markdown_code(raw_text(text)))


def _line(text: Any) -> str:
    """Text safe on a Markdown line (escaped once)."""
    return safe(text, markdown_text)


def _row(cells: Iterable[Any]) -> str:
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "---:") -> list[str]:
    """A Markdown table: first column left-aligned, the others aligned by ``align``."""
    lines = [_row(header), "| " + " | ".join(["---", *[align] * (len(header) - 1)]) + " |"]
    lines.extend(_row(row) for row in rows)
    return lines


def _verdict_line(passed: bool, checks: Sequence[Check]) -> str:
    failed = sum(not check.passed for check in checks)
    counts = f" ({len(checks) - failed} of {len(checks)} checks passed)" if checks else " (no checks)"
    return f"**Verdict: {PASS} passed**{counts}" if passed else f"**Verdict: {FAIL} failed**{counts}"


def _check_lines(checks: Sequence[tuple[str, Check]], with_label: bool = False) -> list[str]:
    """A table of (checkpoint, check): ✅/❌, (checkpoint,) rule, value, baseline or reason."""
    header = ["", *(["checkpoint"] if with_label else []), "rule", "value", "detail"]
    rows = []
    for label, check in checks:
        shows_baseline = check.kind == "baseline" or (
            check.kind == "undefined" and check.baseline is not None
        )
        detail = check.reason or ("baseline " + short(check.baseline) if shows_baseline else "")
        rows.append(
            [
                PASS if check.passed else FAIL,
                *([label] if with_label else []),
                check.rule,
                short(check.value),
                detail,
            ]
        )
    return _table(header, rows, align="---")


def _context_line(report: Report) -> str:
    """Checkpoint, head and features in one line."""
    checkpoint, features = report.checkpoint, report.features
    parts = []
    if checkpoint.get("head"):
        parts.append(f"head {_code(checkpoint['head'])}")
    if checkpoint.get("sha256"):
        parts.append(f"sha256 {_code(raw_text(checkpoint['sha256'])[:12])}")
    if features.get("path"):
        split = f" ({_line(features['split'])})" if features.get("split") else ""
        parts.append(f"features {_code(features['path'])}{split}")
    sizes = [
        f"{sym} = {_line(features[key])}"
        for sym, key in (("N", "num_samples"), ("d", "feature_dim"), ("C", "num_classes"))
        if key in features
    ]
    if sizes:
        parts.append(", ".join(sizes))
    return " · ".join(parts)


def render_markdown(report: Report) -> str:
    """A Markdown summary of one report: metric | value | NC target | distance, conventions, notes, checks, verdict."""
    name = report.label or report.checkpoint.get("path") or "report"
    passed = report.passed
    lines = [f"## nc-audit: {_code(name)} {PASS if passed else FAIL}", ""]
    context = _context_line(report)
    if context:
        lines += [context, ""]
    rows = []
    errors = half_widths({"details": report.details})  # 95% half-widths of SLQ estimates (MI, MIR)
    for key, value in report.metrics.items():
        number, target = as_number(value), as_number(report.targets.get(key))
        distance = abs(number - target) if number is not None and target is not None else None
        rows.append([key, with_error(short(value), key, errors), short(target), short(distance)])
    lines += [*_table(["metric", "value", "NC target", "distance"], rows), ""]
    if report.layers:
        lines += _layer_lines(report)
    if report.conventions:
        text = " · ".join(
            f"{_line(key)} = {_line(_json_scalar(value))}" for key, value in report.conventions.items()
        )
        lines += [f"Conventions: {text}", ""]
    if report.notes:
        lines += ["**Notes**", "", *[f"- {_line(note)}" for note in report.notes], ""]
    if report.checks:
        lines += ["**Checks**", "", *_check_lines([("", check) for check in report.checks]), ""]
    lines.append(_verdict_line(passed, report.checks))
    return "\n".join(lines) + "\n"


def _layer_lines(report: Report) -> list[str]:
    """Collapse across depth: one row per layer (the module whose input is measured), then the NC targets."""
    from nc_audit.report.layers_console import LAYER_COLUMNS

    header = ["layer", "module", "width", "vs", *(title for _, title in LAYER_COLUMNS)]
    rows: list[list[Any]] = [
        [_code(layer.name), layer.module, str(layer.width), layer.against]
        + [short(layer.metrics[key]) for key, _ in LAYER_COLUMNS]
        for layer in report.layers
    ]
    rows.append(["NC target", "", "", "", *(short(report.targets.get(key)) for key, _ in LAYER_COLUMNS)])
    return ["**Layers** (input of each module, forward order)", "", *_table(header, rows), ""]


def _json_scalar(value: Any) -> Any:
    """Booleans and null as JSON spells them (true/false/null), everything else as it is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else value


def render_trajectory_markdown(trajectory: Trajectory) -> str:
    """A Markdown summary of a trajectory: one row per checkpoint with the main metrics, then failed checks."""
    records = trajectory.records
    passed = trajectory.passed
    lines = [f"## nc-audit trajectory: {len(records)} checkpoints {PASS if passed else FAIL}", ""]
    columns = [key for key in TRAJECTORY_COLUMNS if any(key in record.metrics for record in records)]
    targets: dict[str, Any] = {}
    for record in records:
        targets.update(record.targets)
    rows = [["NC target", "", *[short(targets.get(key)) for key in columns], ""]]
    for index, record in enumerate(records):
        status = UNDEFINED if record.gated is False else PASS if record.passed else FAIL
        rows.append(
            [
                _code(record_label(record, index)),
                "" if record.step is None else str(record.step),
                *[short(record.metrics.get(key)) for key in columns],
                status,
            ]
        )
    lines += [*_table(["checkpoint", "step", *columns, "checks"], rows), ""]
    if any(record.layers for record in records):  # collapse across depth (--layers)
        from nc_audit.report.layers_tables import layers_trajectory_markdown

        lines += layers_trajectory_markdown(trajectory)
    failed = [
        (record_label(record), check) for record in records for check in record.checks if not check.passed
    ]
    if failed:
        lines += ["**Failed checks**", "", *_check_lines(failed, with_label=True), ""]
    all_checks = [check for record in records for check in record.checks]
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
