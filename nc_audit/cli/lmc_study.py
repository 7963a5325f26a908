"""The body of `nc-audit study lmc`: build the study from the options, run it, write the outputs.

The experiment is nc_audit.experiments.studies.lmc; the page and the plot are nc_audit.report.lmc_study.
This module only wires them to the options and the terminal.
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
from nc_audit.experiments.studies.lmc import COLUMNS, LmcStudy, run_lmc
from nc_audit.report.lmc_plot import plot_lmc
from nc_audit.report.lmc_study import lmc_page, lmc_table
from nc_audit.report.numbers import decimals
from nc_audit.report.tables import Line
from nc_audit.report.tables_markdown import page_text, table_text

#: The columns of the per-pair console line.
SHOWN = ("loss_barrier_train", "error_barrier_test", "mir_dip", "hdr_rise")


def describe(record: Mapping[str, Any]) -> Line:
    """``k=5 seed 2: loss barrier (train) 0.0012, error barrier (test) 0.0000, …`` (escaped when shown)."""
    values = {name: (header, get(record)) for name, header, get in COLUMNS if name in SHOWN}
    shown = ", ".join(f"{header} {decimals(value, 4, undefined='—')}" for header, value in values.values())
    return (f"k={record['setting']} seed {record['seed']}: {shown}",)


def build_study(
    *,
    quick: bool,
    spawn_epochs: str | None,
    seeds: int | None,
    epochs: int | None,
    steps: int | None,
    independent: bool,
) -> LmcStudy:
    """The study the options describe (the defaults, or --quick, with the values given replacing them)."""
    study = LmcStudy.quick() if quick else LmcStudy()
    if spawn_epochs is not None:
        study = replace(study, spawn_epochs=parse_numbers(spawn_epochs, "--spawn-epochs", int))
    study = with_seeds_and_epochs(study, seeds, epochs)
    if steps is not None:
        study = replace(study, steps=steps)
    return replace(study, independent=independent)


def run_lmc_command(
    out: Path, markdown: Path, plot: Path, tracker: Tracker, study: LmcStudy, *, resume: bool
) -> None:
    """Run (or resume) the study, print the table on stdout, write the page and the plot."""
    document = run_lmc(out, study, resume=resume, tracker=tracker, on_record=run_line(describe))
    print_stdout(table_text(lmc_table(document["summary"])))
    write_outputs(page_text(lmc_page(document)), markdown, plot, lambda path: plot_lmc(document, path))
