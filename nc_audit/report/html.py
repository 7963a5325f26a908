"""One self-contained HTML file per run (``--html PATH``): the tables, the plots inlined as base64 PNGs, the
conventions, notes and checks — no script, no stylesheet or image fetched from anywhere.

Every string that comes from an input (paths, labels, dataset specs, notes, rules) is HTML-escaped. The
markup is also well-formed XML (void elements closed, only the five XML entities), so the tests parse
it with both ``html.parser`` and ``xml.etree``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from nc_audit.core.version import __version__
from nc_audit.metrics.catalog import METRICS
from nc_audit.report.checks import check_message, check_name
from nc_audit.report.escape import html_text
from nc_audit.report.formats.view import raw_text, safe
from nc_audit.report.model import Check, Report, Trajectory, record_label
from nc_audit.report.numbers import decimals, significant
from nc_audit.report.plots import figure_png

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #1f2328; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #d0d7de; }
.wide { overflow-x: auto; max-width: 100%; margin: .6em 0; }
table { border-collapse: collapse; } th, td { padding: .25em .7em; border: 1px solid #d0d7de; }
h1, p, li, td { overflow-wrap: anywhere; } th, td.n { white-space: nowrap; }
th { background: #f6f8fa; text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.target td { color: #57606a; font-style: italic; } tr.fail td { background: #ffebe9; }
.pass { color: #1a7f37; font-weight: 600; } .fail { color: #cf222e; font-weight: 600; }
.muted { color: #57606a; } code { background: #f6f8fa; padding: 0 .25em; border-radius: 3px; }
img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
"""
#: Trajectory table columns (METRICS.md keys), when present.
TRAJECTORY_COLUMNS = (
    "nc1",
    "nc1_cdnv",
    "nc2_equinorm_means",
    "nc3",
    "nc4",
    "h_head",
    "h_means",
    "mi",
    "mir",
    "hdr",
)


def e(value: Any) -> str:
    """Any value as escaped HTML text (control characters shown as escapes: report/escape.py), escaped
    once: a string of the HTML format's escaped view is already HTML (nc_audit.report.formats.view)."""
    return safe(value, html_text)


def num(value: Any, digits: int = 6) -> str:
    """A number with ``digits`` significant digits (:mod:`nc_audit.report.numbers`); — when undefined."""
    return significant(value, digits)


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    numeric_from: int = 1,
    classes: Sequence[str] = (),
    numeric_to: int | None = None,
) -> str:
    """An HTML table in a box of its own that scrolls sideways when the table is wider than the window
    (never cut); cells are escaped here (pass raw strings); text cells wrap, even inside a long path;
    columns ``numeric_from`` up to (not including) ``numeric_to`` are numbers, right-aligned, unbroken."""
    stop = len(header) if numeric_to is None else numeric_to
    head = "".join(f"<th>{e(name)}</th>" for name in header)
    body = []
    for index, row in enumerate(rows):
        css = classes[index] if index < len(classes) and classes[index] else ""
        cells = "".join(
            f'<td class="n">{e(cell)}</td>' if numeric_from <= i < stop else f"<td>{e(cell)}</td>"
            for i, cell in enumerate(row)
        )
        body.append(f'<tr class="{css}">{cells}</tr>' if css else f"<tr>{cells}</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="wide">{table}</div>'  # a table wider than the window scrolls in its own box


def figure_img(figure: Figure, alt: str) -> str:
    """The figure as an inline PNG."""
    data = base64.b64encode(figure_png(figure)).decode("ascii")
    return f'<p><img src="data:image/png;base64,{data}" alt="{e(alt)}" /></p>'


def page(title: str, verdict: bool | None, sections: Sequence[str]) -> str:
    """A whole HTML document."""
    badge = ""
    if verdict is not None:
        badge = ' <span class="pass">passed</span>' if verdict else ' <span class="fail">failed</span>'
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8" />'
        '<meta name="viewport" content="width=device-width, initial-scale=1" />'
        f"<title>{e(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{e(title)}{badge}</h1>{''.join(sections)}"
        f'<p class="muted">written by nc-audit {e(__version__)}</p></body></html>\n'
    )


def conventions_section(conventions: Mapping[str, Any]) -> str:
    if not conventions:
        return ""
    rows = [[key, value] for key, value in conventions.items()]
    return "<h2>Conventions</h2>" + table(["convention", "value"], rows, numeric_from=2)


def notes_section(notes: Iterable[Any]) -> str:
    items = "".join(f"<li>{e(note)}</li>" for note in dict.fromkeys(notes))
    return f"<h2>Notes</h2><ul>{items}</ul>" if items else ""


def checks_section(checks: Sequence[tuple[str, Check]], with_checkpoint: bool = False) -> str:
    """Every check: ✓/✗, (checkpoint,) its stable name, its message; then the count."""
    if not checks:
        return '<h2>Checks</h2><p class="muted">no rules or baseline given</p>'
    rows, classes = [], []
    for where, check in checks:
        mark = "✓ pass" if check.passed else "✗ FAIL"
        rows.append([mark, *([where] if with_checkpoint else []), check_name(check), check_message(check)])
        classes.append("" if check.passed else "fail")
    failed = sum(not check.passed for _, check in checks)
    header = ["", *(["checkpoint"] if with_checkpoint else []), "check", "value and limit"]
    summary = (
        f'<p class="fail">{failed} of {len(checks)} checks failed</p>'
        if failed
        else f'<p class="pass">all {len(checks)} checks passed</p>'
    )
    return "<h2>Checks</h2>" + table(header, rows, numeric_from=len(header), classes=classes) + summary


def source_rows(report: Report) -> list[list[Any]]:
    checkpoint, features, details = report.checkpoint, report.features, report.details
    sizes = ", ".join(raw_text(features.get(key)) for key in ("num_samples", "feature_dim", "num_classes"))
    rows = [
        ["checkpoint", checkpoint.get("path") or "—"],
        ["sha256", checkpoint.get("sha256") or "—"],
        ["head", checkpoint.get("head") or "—"],
        ["features", features.get("path") or "—"],
        ["split", features.get("split") or "—"],
        ["N, d, C", sizes],
    ]
    if features.get("means_split") not in (None, features.get("split")):
        rows.append(["class means from", features["means_split"]])
    if "accuracy" in details:
        accuracy, ncc = details["accuracy"], details.get("ncc_accuracy")
        rows.append(["accuracy", f"classifier {decimals(accuracy, 4)}, nearest class mean {num(ncc, 4)}"])
    return rows


def report_html(report: Report) -> str:
    """The HTML of one report (``measure``): sources, metrics beside their NC targets, the distance plot,
    conventions, notes and checks."""
    from nc_audit.report.figures import report_figure
    from nc_audit.report.layers_tables import layers_report_html

    rows = []
    for key, value in report.metrics.items():
        target = report.targets.get(key)
        distance = abs(value - target) if value is not None and target is not None else None
        info = METRICS.get(key)
        rows.append([key, num(value), num(target), num(distance), info.meaning if info else ""])
    name = raw_text(report.label or report.checkpoint.get("path") or "report")
    sections = [
        "<h2>Source</h2>" + table(["source", "value"], source_rows(report), numeric_from=2),
        "<h2>Metrics</h2>"
        + table(["metric", "value", "NC target", "|Δ| to NC", "meaning"], rows, numeric_to=4),
        figure_img(report_figure(report), "distance of each metric to its Neural Collapse target"),
        layers_report_html(report),
        conventions_section(report.conventions),
        notes_section(report.notes),
        checks_section([("", check) for check in report.checks]),
    ]
    return page(f"nc-audit: {name}", report.passed if report.checks else None, sections)


def trajectory_html(trajectory: Trajectory) -> str:
    """The HTML of a trajectory (``track``): one row per checkpoint, the NC targets, the plot, conventions,
    notes and the checks of the gated checkpoints."""
    from nc_audit.report.layers_tables import layers_trajectory_html
    from nc_audit.report.plots import trajectory_figure

    records = trajectory.records
    columns = [key for key in TRAJECTORY_COLUMNS if any(key in record.metrics for record in records)]
    targets: dict[str, Any] = {}
    rows, classes = [], []
    for index, record in enumerate(records):
        targets.update(record.targets)
        accuracy = record.details.get("accuracy", record.metrics.get("accuracy"))
        status = "—" if not record.checks else "✓" if record.passed else "✗"
        step = record.step
        rows.append([record_label(record, index), "—" if step is None else step, num(accuracy, 4),
                     *(num(record.metrics.get(key), 4) for key in columns), status])  # fmt: skip
        classes.append("" if record.passed else "fail")
    rows.append(["NC target", "", "", *(num(targets.get(key), 4) for key in columns), ""])
    classes.append("target")
    checks = [(record_label(r, i), c) for i, r in enumerate(trajectory) for c in r.checks]
    gate_text = {  # only when a gate was given: then every gated checkpoint holds a check
        "last": "the last checkpoint is gated (--gate last)",
        "best": "the most accurate checkpoint is gated (--gate best)",
        "all": "every checkpoint is gated (--gate all)",
    }.get(raw_text(trajectory.gate), "") if checks else ""  # fmt: skip
    sections = [
        f'<p class="muted">{e(gate_text)}</p>' if gate_text else "",
        "<h2>Checkpoints</h2>"
        + table(
            ["checkpoint", "step", "accuracy", *columns, "checks"], rows, numeric_from=1, classes=classes
        ),
        figure_img(trajectory_figure(trajectory), "every metric against step, one panel per scale"),
        layers_trajectory_html(trajectory),
        conventions_section(records[0].conventions if records else {}),
        notes_section(note for record in records for note in record.notes),
        checks_section(checks, with_checkpoint=True),
    ]
    verdict = trajectory.passed if checks else None
    return page(f"nc-audit trajectory: {len(records)} checkpoints", verdict, sections)


def finetune_html(document: Mapping[str, Any]) -> str:
    """The HTML of a fine-tuning run: settings, before vs after, the history plot and table, notes."""
    from nc_audit.report.figures import finetune_figure

    history: Sequence[Mapping[str, Any]] = document.get("history") or []
    keys = list(dict.fromkeys(key for line in history for key in line))
    settings = [[key, value] for key, value in (document.get("settings") or {}).items()]
    before_after = [
        [label, num(before, 4), num(after, 4)] for label, before, after in document.get("rows") or []
    ]
    history_rows = [[line.get("epoch", i), *(num(line.get(k), 4) for k in keys if k != "epoch")] for i, line in enumerate(history)]  # fmt: skip
    sections = [
        "<h2>Before and after</h2>" + table(["metric", "before", "after"], before_after),
        figure_img(finetune_figure(document), "fine-tuning history against epoch"),
        "<h2>History</h2>" + table(["epoch", *(k for k in keys if k != "epoch")], history_rows),
        "<h2>Settings</h2>" + table(["setting", "value"], settings, numeric_from=2),
        notes_section(document.get("notes") or []),
        f"<h2>Output</h2><p>final checkpoint: <code>{e(document.get('final_path', '—'))}</code></p>",
    ]
    return page("nc-audit fine-tuning", None, sections)
