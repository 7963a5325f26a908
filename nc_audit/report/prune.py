"""`nc-audit prune`'s output: the Markdown page (RESULTS.md), its table, the per-sparsity console line and
the plot, built as typed pages (:mod:`nc_audit.report.tables`) from the pruning document and its summary
rows (nc_audit.experiments.prune_summary). The checkpoint path and the data name come from the user: they
are pieces the renderers escape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nc_audit.report.studies import Panel, geometry_panels, plot_study, summary_table
from nc_audit.report.tables import Code, Line, Markup, Number, Page, Paragraph, Spread, Table

Document = Mapping[str, Any]


def pruning_table(rows: Sequence[Mapping[str, Any]], headers: Sequence[tuple[str, str]]) -> Table:
    """One row per sparsity: kept share, accuracies and metrics (mean ± std over its runs)."""
    return summary_table(rows, [("sparsity", "sparsity")], headers)


def _tuned(settings: Mapping[str, Any]) -> Line:
    if not settings["finetune_epochs"]:
        return ("no fine-tuning after pruning",)
    return ("every model (sparsity 0 too, the control) fine-tuned ", Number(settings["finetune_epochs"], None),
            " epoch(s) with its masks kept (Adam, lr ", Number(settings["lr"], None), ", batch ",
            Number(settings["batch_size"], None), ")")  # fmt: skip


def pruning_page(document: Document, table: Table) -> Page:
    """RESULTS.md: what was pruned and how, then the table."""
    settings = document["settings"]
    head = "the head included" if settings["include_head"] else "the head left dense"
    title: Line = ("Magnitude pruning of ", Code(document["checkpoint"]["path"]), " on ", str(document["data"]),
                   " (", Markup("`nc-audit prune`"), ")")  # fmt: skip
    setup: Line = ("Scope ", str(settings["scope"]), f" (weights of every Linear/Conv layer, {head}); ",
                   *_tuned(settings), '. "kept": share of the pruned layers\' weights kept. Accuracy, NC1, NC4, '
                   "MIR, HDR on the ", str(settings["split"]), " split (MIR_NC = ", Number(document["targets"].get("mir")),
                   "); test accuracy on the test split.")  # fmt: skip
    return Page(title, (Paragraph(setup), table))


def pruning_line(record: Mapping[str, Any]) -> Line:
    """``sparsity 0.5 (kept 0.5000): accuracy 1.0000, test 0.9844, NC1 0.0060, MIR 0.9517, HDR 0.0041``."""
    metrics, test = record["report"]["metrics"], record["test_accuracy"]
    tested: Line = () if test is None else (", test ", Number(test))
    return ("sparsity ", Number(record["sparsity"], None), " (kept ", Number(record["kept"]["fraction"]),
            "): accuracy ", Number(record["accuracy"]), *tested, ", NC1 ", Number(metrics["nc1"]), ", MIR ",
            Number(metrics["mir"]), ", HDR ", Number(metrics["hdr"]))  # fmt: skip


def plot_pruning(document: Document, rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Accuracy (split and test), NC1, MIR and HDR against sparsity; no test panel when none was measured."""
    settings = document["settings"]
    panels = [Panel("accuracy", f"accuracy ({settings['split']})"), Panel("test_accuracy", "test accuracy"),
              *geometry_panels(document["targets"])]  # fmt: skip
    if all(Spread.of(row.get("test_accuracy")).mean is None for row in rows):
        panels = [panel for panel in panels if panel.column != "test_accuracy"]
    name = Path(str(document["checkpoint"]["path"])).name
    plot_study(rows, "sparsity", panels, path, xlabel="sparsity",
               title=f"magnitude pruning ({settings['scope']}) of {name} on {document['data']}")  # fmt: skip
