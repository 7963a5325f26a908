"""The body of `nc-audit study prune`: build the study from the options, run it, write the outputs.

The experiment is nc_audit.experiments.studies.prune_seeds; the page and the plot are
nc_audit.report.prune_seeds. This module only wires them to the options and the terminal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from nc_audit.cli.common import print_stdout
from nc_audit.cli.experiment_output import parse_numbers, run_line, with_seeds_and_epochs
from nc_audit.cli.study import write_outputs
from nc_audit.core.progress import Tracker
from nc_audit.experiments.studies.prune_seeds import COLUMNS, PruneSeedsStudy, run_prune_seeds
from nc_audit.report.numbers import decimals
from nc_audit.report.prune_seeds import plot_prune_seeds, prune_seeds_page, prune_seeds_table
from nc_audit.report.tables import Line
from nc_audit.report.tables_markdown import page_text, table_text


def describe(record: Mapping[str, Any]) -> Line:
    """``seed 2 sparsity 0.9: test accuracy 0.95, NC1 …`` (a plain string: escaped when shown)."""
    shown = ", ".join(f"{header} {decimals(get(record), 4, undefined='—')}"
                      for name, header, get in COLUMNS if name != "kept")  # fmt: skip
    return (f"seed {record['seed']} sparsity {record['sparsity']:g}: {shown}",)


def build_study(
    *, quick: bool, sparsities: str | None, seeds: int | None, epochs: int | None
) -> PruneSeedsStudy:
    """The study the options describe (the defaults, or --quick, with the values given replacing them)."""
    study = PruneSeedsStudy.quick() if quick else PruneSeedsStudy()
    if sparsities is not None:
        values = parse_numbers(sparsities, "--sparsities")
        study = replace(study, pruning=replace(study.pruning, sparsities=values))
    study = with_seeds_and_epochs(study, seeds, epochs)
    return study


def run_prune_study_command(
    out: Path, markdown: Path, plot: Path, tracker: Tracker, study: PruneSeedsStudy, *, resume: bool
) -> None:
    """Run (or resume) the study, print the table on stdout, write the page and the plot."""
    document = run_prune_seeds(out, study, resume=resume, tracker=tracker, on_record=run_line(describe))
    print_stdout(table_text(prune_seeds_table(document["summary"])))
    write_outputs(page_text(prune_seeds_page(document)), markdown, plot,
                  lambda path: plot_prune_seeds(document, path))  # fmt: skip
