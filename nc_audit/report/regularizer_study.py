"""Rendering of the regulariser study (nc_audit.experiments.studies.regularizer): Markdown page and PNG.

The document is a study results document (DIR/results.json); the page is the typed table model
(nc_audit.report.tables), so every string taken from it (data spec, setting names: a resumed study reads
its records back from files) is escaped by the one Markdown renderer (nc_audit.report.tables_markdown).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nc_audit.report.studies import Panel, geometry_panels, plot_study
from nc_audit.report.study_pages import model_text, recipe_line, wall_time_line
from nc_audit.report.tables import Block, Column, Line, Markup, Number, Page, Paragraph, Spread, Table

#: Summary columns shown in the table: (key, header).
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("test_accuracy", "test accuracy"),
    ("nc1", "NC1"),
    ("mir", "MIR"),
    ("hdr", "HDR"),
    ("h_head", "H(K_W)"),
    ("train_accuracy", "train accuracy"),
)
PLAIN = "none"


def regularizer_table(rows: Sequence[Mapping[str, Any]], digits: int = 4) -> Table:
    """λ, form, runs, then one mean ± std cell per column (every text escaped by the renderer)."""
    headers = (Column("λ"), Column("form"), Column("runs"), *(Column(header) for _, header in TABLE_COLUMNS))

    def cells(row: Mapping[str, Any]) -> tuple[Line, ...]:
        form = "— (cross-entropy only)" if row["setting"] == PLAIN else str(row["setting"])
        fixed: tuple[Line, ...] = (
            (Number(float(row["lam"]), None),),
            (form,),
            (Number(int(row.get("runs", 0)), None),),
        )
        return fixed + tuple((Spread.of(row.get(key), digits),) for key, _ in TABLE_COLUMNS)

    return Table(headers, tuple(cells(row) for row in rows))


def regularizer_page(document: Mapping[str, Any]) -> Page:
    """The page: what was trained, the two forms' formulas, the table, and the study's wall time."""
    settings, targets = document["settings"], document["targets"]
    seeds = ", ".join(str(int(s)) for s in settings["seeds"])
    title: Line = (
        "MIR/HDR regulariser on ",
        str(settings["data"]),
        " (",
        Markup("`nc-audit study regularizer`"),
        ")",
    )
    setup: Line = (
        f"Model: {model_text(document['model'])}, trained from scratch per run: ", *recipe_line(settings),
        "; loss = cross-entropy + R with λ_mir = λ_hdr = λ "
        '(docs/METRICS.md, "MIR/HDR regulariser forms"). Forms: ',
        Markup("**nc/detached**"), " (the default): R = λ·|MIR(K_Z, K_Y) − MIR*| + λ·|HDR(K_Z, K_Y) − HDR*|, the "
        "batch's values at exact collapse as target, features centred by the mean of the batch's class means, "
        "head rows detached; ", Markup("**max/trainable**"), " (the form shipped first): R = −λ·MIR(K_Z, K_Y) + "
        "λ·HDR(K_Z, K_Y), features centred by the batch mean, head rows trainable. λ = 0 is cross-entropy alone "
        "(one run per seed for both forms). NC1, MIR, HDR and H(K_W) on the train features (K_W against the "
        "train class means; MIR_NC = ", Number(targets["mir"]), ", H(K_W) at collapse = log(C−1) = ",
        Number(targets["h_head"]), f"); test accuracy on the test split. Seeds {seeds}; mean ± sample standard "
        "deviation.",
    )  # fmt: skip
    blocks: list[Block] = [
        Paragraph(setup),
        regularizer_table(document["summary"]),
        Paragraph(wall_time_line(document["records"])),
    ]
    return Page(title, tuple(blocks))


def plot_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One line per form: the λ = 0 row (cross-entropy only) is the first point of every form's line."""
    forms = list(dict.fromkeys(row["setting"] for row in rows if row["setting"] != PLAIN))
    plain = [row for row in rows if row["setting"] == PLAIN]
    out: list[dict[str, Any]] = []
    for form in forms:
        out += [{**row, "form": form} for row in plain]
        out += [{**row, "form": form} for row in rows if row["setting"] == form]
    if not forms:
        out = [{**row, "form": PLAIN} for row in plain]
    return out


def plot_regularizer(document: Mapping[str, Any], path: Path) -> None:
    """PNG: test accuracy, NC1, MIR, HDR and H(K_W) against λ, one line per form, ± std error bars."""
    targets = document["targets"]
    panels = [Panel("test_accuracy", "test accuracy"), *geometry_panels(targets, "train"),
              Panel("h_head", "H(K_W)", targets.get("h_head"))]  # fmt: skip
    seeds = len(document["settings"]["seeds"])
    plot_study(plot_rows(document["summary"]), "lam", panels, path, xlabel="λ", line_key="form",
               categorical=True, title=f"MIR/HDR regulariser on {document['settings']['data']}: mean ± std over "
               f"{seeds} seed(s)")  # fmt: skip
