"""The body of `nc-audit study regularizer`: build the study from the options, run it, write the outputs.

The experiment is nc_audit.experiments.studies.regularizer; the page and the plot are
nc_audit.report.regularizer_study. This module only wires them to the options and the terminal.
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
from nc_audit.experiments.studies.regularizer import RegularizerStudy, run_regularizer
from nc_audit.report.numbers import decimals
from nc_audit.report.regularizer_study import plot_regularizer, regularizer_page, regularizer_table
from nc_audit.report.tables import Line
from nc_audit.report.tables_markdown import page_text, table_text


def _number(value: float | None) -> str:
    return decimals(value, 4, undefined="—")


def describe(record: Mapping[str, Any]) -> Line:
    """``λ=1 nc/detached seed 2: test accuracy 0.98, NC1 …`` (a plain string: escaped when shown)."""
    metrics = record["train"]["metrics"]
    return (
        f"λ={record['lam']:g} {record['setting']} seed {record['seed']}: test accuracy "
        f"{record['test']['accuracy']:.4f}, NC1 {_number(metrics['nc1'])}, MIR {_number(metrics['mir'])}, "
        f"HDR {_number(metrics['hdr'])}, H(K_W) {_number(metrics['h_head'])}",
    )


def build_study(
    *, quick: bool, weights: str | None, seeds: int | None, epochs: int | None
) -> RegularizerStudy:
    """The study the options describe (the defaults, or --quick, with the values given replacing them)."""
    study = RegularizerStudy.quick() if quick else RegularizerStudy()
    if weights is not None:
        study = replace(study, weights=parse_numbers(weights, "--weights"))
    study = with_seeds_and_epochs(study, seeds, epochs)
    return study


def run_regularizer_command(
    out: Path,
    markdown: Path,
    plot: Path,
    tracker: Tracker,
    *,
    quick: bool,
    resume: bool,
    weights: str | None,
    seeds: int | None,
    epochs: int | None,
) -> None:
    """Run (or resume) the study, print the table on stdout, write the page and the plot."""
    study = build_study(quick=quick, weights=weights, seeds=seeds, epochs=epochs)
    document = run_regularizer(out, study, resume=resume, tracker=tracker, on_record=run_line(describe))
    print_stdout(table_text(regularizer_table(document["summary"])))
    write_outputs(page_text(regularizer_page(document)), markdown, plot,
                  lambda path: plot_regularizer(document, path))  # fmt: skip
