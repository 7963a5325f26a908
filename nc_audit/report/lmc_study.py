"""Rendering of the linear-mode-connectivity study (nc_audit.experiments.studies.lmc): the Markdown page (the PNG:
nc_audit.report.lmc_plot).

The document is a study results document (DIR/results.json); the page is the typed table model
(nc_audit.report.tables), so every string taken from it (the data spec, a setting read back from a resumed
record) is escaped by the one Markdown renderer (nc_audit.report.tables_markdown).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nc_audit.report.study_pages import model_text, recipe_line, wall_time_line
from nc_audit.report.tables import Block, Column, Line, Markup, Number, Page, Paragraph, Spread, Table

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


#: Decimals per column where 4 would hide the children's values (MIR moves by 1e-5 along their paths).
DIGITS = {"mir_dip": 5}


def lmc_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """Spawn epoch k (or independent), pairs, then one mean ± std cell per column."""
    headers = (Column("spawn epoch k"), Column("pairs"), *(Column(header) for _, header in TABLE_COLUMNS))

    def cells(row: Mapping[str, Any]) -> tuple[Line, ...]:
        fixed: tuple[Line, ...] = ((_setting_text(row.get("setting")),), (Number(row.get("runs"), None),))
        return fixed + tuple((Spread.of(row.get(key), DIGITS.get(key, 4)),) for key, _ in TABLE_COLUMNS)

    return Table(headers, tuple(cells(row) for row in rows))


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
    blocks.append(Paragraph(wall_time_line(records, unit="pairs")))
    return Page(title, tuple(blocks))
