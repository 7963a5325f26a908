"""Rendering of the linear-mode-connectivity study (nc_audit.experiments.studies.lmc): the Markdown page and
the PNG of barriers and dips against the spawn epoch k.

The document is a study results document (DIR/results.json); the page is the typed table model
(nc_audit.report.tables), so every string taken from it (the data spec, a setting read back from a resumed
record) is escaped by the one Markdown renderer (nc_audit.report.tables_markdown).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nc_audit.report.studies import Panel, plot_study, summary_table
from nc_audit.report.study_pages import model_text, recipe_line
from nc_audit.report.tables import Block, Line, Markup, Number, Page, Paragraph, Table

INDEPENDENT = "independent"
#: Summary columns shown in the table: (key, header), in the order of
#: nc_audit.experiments.studies.lmc.COLUMNS.
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("loss_barrier_train", "loss barrier (train)"),
    ("loss_barrier_test", "loss barrier (test)"),
    ("error_barrier_train", "error barrier (train)"),
    ("error_barrier_test", "error barrier (test)"),
    ("mir_dip", "MIR dip"),
    ("hdr_rise", "HDR rise"),
    ("nc1_mid", "NC1 at α = 0.5"),
    ("nc1_ends", "NC1 at the ends"),
    ("test_error", "test error (ends)"),
)


def _setting_text(setting: Any) -> str:
    return "independent (two inits)" if setting == INDEPENDENT else str(setting)


def lmc_table(rows: Sequence[Mapping[str, Any]], digits: int = 4) -> Table:
    """Spawn epoch k (or independent), pairs, then one mean ± std cell per column."""
    shown = [{**row, "setting": _setting_text(row.get("setting"))} for row in rows]
    return summary_table(shown, (("setting", "spawn epoch k"), ("runs", "pairs")), TABLE_COLUMNS, digits)


def _load_text(records: Sequence[Mapping[str, Any]]) -> str:
    loads = [float(r["load_average"]) for r in records if isinstance(r.get("load_average"), (int, float))]
    if not loads:
        return ""
    return f"; load average (1 min) at the end of the runs {min(loads):.1f}–{max(loads):.1f}"


def lmc_page(document: Mapping[str, Any]) -> Page:
    """The page: what was trained, the definitions, the table, the wall time and load."""
    settings, targets = document["settings"], document["targets"]
    records = document["records"]
    seeds = ", ".join(str(int(s)) for s in settings["seeds"])
    title: Line = (
        "Linear mode connectivity on ",
        str(settings["data"]),
        " (",
        Markup("`nc-audit study lmc`"),
        ")",
    )
    setup: Line = (
        f"Model: {model_text(document['model'])}; recipe: ", *recipe_line(settings),
        ". Per seed s, the parent (init and batch order seeded s: the λ = 0 run of ",
        Markup("`study regularizer`"), ") is trained to epoch k; two children start from its weights, "
        "BatchNorm buffers, SGD momentum and cosine schedule at epoch k and train to the last epoch in two "
        "other batch orders (order seeds 10000 + 2s, 10001 + 2s). ", Markup("**independent**"),
        ": two full runs from different inits and batch orders (seeds s and 20000 + s). Each pair's straight "
        "path is ", Markup("`nc-audit interpolate`"), "'s, ", Number(settings["steps"], None), " values of α, "
        "BatchNorm statistics recomputed on the train split at every interior α. Barrier of f: "
        "max over α of f(α) − [(1 − α)·f(0) + α·f(1)] (loss: mean cross-entropy; error: 1 − accuracy); MIR dip: "
        "max over α of the line minus MIR(α); HDR rise: the barrier of HDR; MIR, HDR and NC1 of each split's "
        "features against its own class means, shown for the train split (MIR_NC = ", Number(targets["mir"]),
        "). Test error (ends): the mean of the two networks' test errors. Seeds ", seeds,
        "; mean ± sample standard deviation over the pairs (docs/METRICS.md, \"Linear mode connectivity\").",
    )  # fmt: skip
    blocks: list[Block] = [Paragraph(setup), lmc_table(document["summary"])]
    seconds = sum(float(r.get("seconds") or 0.0) for r in records)
    wall: Line = (
        "Wall time of the study: ",
        Number(seconds, 0),
        " s (sum of the pairs' times)",
        _load_text(records),
        ".",
    )
    blocks.append(Paragraph(wall))
    return Page(title, tuple(blocks))


def plot_lmc(document: Mapping[str, Any], path: Path) -> None:
    """PNG: loss and error barriers, MIR dip, HDR rise and NC1 at α = 0.5 against k (categorical: an
    evenly spaced, log-like axis 0, 1, 2, 5, …), the independent pairs as a point of their own."""
    rows = [
        {**row, "pair": "independent" if row["setting"] == INDEPENDENT else "children of one parent"}
        for row in document["summary"]
    ]
    panels = [
        Panel("loss_barrier_train", "loss barrier (train)"),
        Panel("error_barrier_train", "error barrier (train)"),
        Panel("error_barrier_test", "error barrier (test)"),
        Panel("mir_dip", "MIR dip (train)"),
        Panel("hdr_rise", "HDR rise (train)"),
        Panel("nc1_mid", "NC1 at α = 0.5 (train, log scale)", log=True),
    ]
    seeds = len(document["settings"]["seeds"])
    plot_study(rows, "setting", panels, path, xlabel="spawn epoch k", line_key="pair", categorical=True,
               title=f"Linear mode connectivity on {document['settings']['data']}: mean ± std over {seeds} "
               "seed(s)")  # fmt: skip
