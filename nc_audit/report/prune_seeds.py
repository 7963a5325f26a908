"""Rendering of the pruning study over seeds (nc_audit.experiments.studies.prune_seeds): Markdown page and PNG.

The document is a study results document (DIR/results.json); the page is the typed table model
(nc_audit.report.tables), so every string taken from it (the data spec: a resumed study reads its
records back from files) is escaped by the one Markdown renderer (nc_audit.report.tables_markdown).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nc_audit.report.studies import Panel, geometry_panels, plot_study
from nc_audit.report.study_pages import model_text, recipe_line, wall_time_line
from nc_audit.report.tables import Block, Column, Line, Markup, Number, Page, Paragraph, Spread, Table

#: Summary columns shown in the table: (key, header), in the order of
#: nc_audit.experiments.studies.prune_seeds.COLUMNS.
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("kept", "weights kept"),
    ("train_accuracy", "train accuracy"),
    ("test_accuracy", "test accuracy"),
    ("nc1", "NC1"),
    ("nc4", "NC4"),
    ("mir", "MIR"),
    ("hdr", "HDR"),
)


def prune_seeds_table(rows: Sequence[Mapping[str, Any]], digits: int = 4) -> Table:
    """Sparsity, runs (seeds), then one mean ± std cell per column."""
    headers = (Column("sparsity"), Column("seeds"), *(Column(header) for _, header in TABLE_COLUMNS))

    def cells(row: Mapping[str, Any]) -> tuple[Line, ...]:
        fixed: tuple[Line, ...] = ((Number(row.get("sparsity"), None),), (Number(row.get("runs"), None),))
        return fixed + tuple((Spread.of(row.get(key), digits),) for key, _ in TABLE_COLUMNS)

    return Table(headers, tuple(cells(row) for row in rows))


def prune_seeds_page(document: Mapping[str, Any]) -> Page:
    """The page: what was trained and pruned, the table, the wall time and the load."""
    settings, targets, records = document["settings"], document["targets"], document["records"]
    pruning = settings["pruning"]
    seeds = ", ".join(str(int(s)) for s in settings["seeds"])
    head = "pruned too" if pruning.get("include_head") else "left dense"
    title: Line = ("Magnitude pruning over seeds on ", str(settings["data"]), " (",
                   Markup("`nc-audit study prune`"), ")")  # fmt: skip
    setup: Line = (
        f"Model: {model_text(document['model'])}, trained from scratch per seed s (the λ = 0 run of ",
        Markup("`study regularizer`"), "): ", *recipe_line(settings), ". Each sparsity prunes a fresh copy "
        "of it as ", Markup("`nc-audit prune`"), " does: ", str(pruning.get("scope")), " magnitude ranking "
        f"of |w| over every Linear layer, the head {head}, ", Number(pruning.get("finetune_epochs"), None),
        " fine-tuning epochs. Train accuracy, NC1, NC4, MIR and HDR on the train split (class means from "
        "train; MIR_NC = ", Number(targets["mir"]), "); test accuracy on the test split. Seeds ", seeds,
        "; mean ± sample standard deviation over the seeds.",
    )  # fmt: skip
    wall = wall_time_line(records, detail=", training included")
    blocks: list[Block] = [Paragraph(setup), prune_seeds_table(document["summary"]), Paragraph(wall)]
    return Page(title, tuple(blocks))


def plot_prune_seeds(document: Mapping[str, Any], path: Path) -> None:
    """PNG: test accuracy, NC1, MIR and HDR against sparsity, mean ± std over seeds."""
    panels = [Panel("test_accuracy", "test accuracy"), *geometry_panels(document["targets"], "train")]
    seeds = len(document["settings"]["seeds"])
    plot_study(document["summary"], "sparsity", panels, path, xlabel="sparsity", categorical=True,
               title=f"Magnitude pruning on {document['settings']['data']}: mean ± std over {seeds} "
               "seed(s)")  # fmt: skip
