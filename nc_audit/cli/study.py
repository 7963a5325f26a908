"""`nc-audit study ...`: the paper's claims measured on small models — label smoothing, semi-supervised,
the MIR/HDR regulariser, linear mode connectivity, magnitude pruning over seeds.

The library (nc_audit.experiments.studies) trains, measures and keeps resumable records; this module
parses options and hands the results to nc_audit.report.study_pages (the page, the table, the per-run
line, the PNG).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer

from nc_audit.cli.common import Command, cli_errors, command_group, print_stdout, wrote
from nc_audit.cli.experiment_output import parse_numbers, run_line, with_seeds_and_epochs
from nc_audit.cli.options import (
    PageMarkdownOpt,
    QuietOpt,
    StudyOutOpt,
    StudyPlotOpt,
    StudyQuickOpt,
    StudyResumeOpt,
    StudySeedsOpt,
    ThreadsOpt,
)

Opt = typer.Option

study_app = command_group(
    "Studies: train small models under the settings of a claim, measure them, tabulate mean ± std."
)


def plan_study_outputs(
    out: Path,
    markdown: Path | None,
    plot: Path | None,
    plot_name: str,
    data: str | None,
    networks: Sequence[Path] = (),
) -> tuple[Path, Path]:
    """The study's Markdown page and plot (defaults in --out), checked with its records and the
    ``networks`` it keeps in --out against its data file before anything is created
    (nc_audit.io.plan.outputs)."""
    from nc_audit.io.plan.outputs import files_in, plan_outputs
    from nc_audit.io.plan.preflight import STUDY_FILES, data_file

    markdown, plot = markdown or out / "RESULTS.md", plot or out / plot_name
    kept = {f"--out {path}": path for path in networks}
    plan_outputs(
        {**files_in(out, STUDY_FILES), **kept, "--markdown": markdown, "--plot": plot}, [data_file(data)]
    )
    return markdown, plot


def write_outputs(text: str, markdown: Path, plot: Path, draw: Callable[[Path], None]) -> None:
    from nc_audit.io.guards.atomic import atomic_write_text

    atomic_write_text(markdown, text)
    draw(plot)
    wrote(f"{markdown}, {plot}")


@study_app.command("label-smoothing", cls=Command)
@cli_errors
def label_smoothing_command(
    out: StudyOutOpt = Path("studies/label-smoothing"),
    epsilons: Annotated[
        str | None,
        Opt(
            metavar="LIST",
            help="Label smoothing values ε, comma-separated. [default: 0,0.05,0.1,0.2; --quick: 0,0.1]",
        ),
    ] = None,
    seeds: StudySeedsOpt = None,
    epochs: Annotated[
        int | None, Opt(min=1, metavar="N", help="Epochs per run. [default: 300, the sample's recipe]")
    ] = None,
    data: Annotated[
        str,
        Opt(
            metavar="NAME|PATH", help="Dataset (inputs as one array): digits, gaussian:..., a .npz/.h5 file."
        ),
    ] = "digits",
    quick: StudyQuickOpt = False,
    resume: StudyResumeOpt = False,
    plot: StudyPlotOpt = None,
    markdown: PageMarkdownOpt = None,
    thread_count: ThreadsOpt = 1,
    quiet: QuietOpt = False,
) -> None:
    """Label smoothing: the sample model trained from scratch with ε ∈ {0, 0.05, 0.1, 0.2}, seeds 0–2.

    Tabulates test accuracy, NC1, MIR and HDR (train features), mean ± std over seeds, and plots them
    against ε. A killed study continues with --resume.
    """
    from dataclasses import replace

    from nc_audit.cli.progress import make_tracker
    from nc_audit.core.threads import torch_threads
    from nc_audit.experiments.studies.label_smoothing import COLUMNS, LabelSmoothingStudy, run_label_smoothing
    from nc_audit.report.study_pages import (
        LABEL_SMOOTHING_GROUPS,
        label_smoothing_line,
        label_smoothing_page,
        plot_label_smoothing,
        study_table,
    )
    from nc_audit.report.tables_markdown import page_text, table_text

    markdown, plot = plan_study_outputs(out, markdown, plot, "label_smoothing.png", data)
    study = LabelSmoothingStudy.quick() if quick else LabelSmoothingStudy()
    study = replace(study, data=data)
    if epsilons is not None:
        study = replace(study, epsilons=parse_numbers(epsilons, "--epsilons"))
    study = with_seeds_and_epochs(study, seeds, epochs)

    with torch_threads(thread_count), make_tracker(quiet) as tracker:
        document = run_label_smoothing(
            out, study, resume=resume, tracker=tracker, on_record=run_line(label_smoothing_line)
        )
    table = study_table(document, LABEL_SMOOTHING_GROUPS, [(name, header) for name, header, _ in COLUMNS])
    print_stdout(table_text(table))
    write_outputs(page_text(label_smoothing_page(document, table)), markdown, plot,
                  lambda path: plot_label_smoothing(document, path))  # fmt: skip


@study_app.command("semi-supervised", cls=Command)
@cli_errors
def semi_supervised_command(
    out: StudyOutOpt = Path("studies/semi-supervised"),
    labels_per_class: Annotated[
        str | None,
        Opt(metavar="LIST", help="Labeled samples per class, comma-separated. [default: 4,10; --quick: 4]"),
    ] = None,
    weights: Annotated[
        str | None,
        Opt(
            metavar="LIST",
            help="Regulariser weights λ of the FixMatch runs (λ_mir = λ_hdr = λ, nc/detached form), comma-separated. "
            "[default: 0,0.1,1; --quick: 0,0.1]",
        ),
    ] = None,
    seeds: StudySeedsOpt = None,
    steps: Annotated[
        int | None, Opt(min=1, metavar="N", help="Optimizer steps per run. [default: 2000; --quick: 20]")
    ] = None,
    baseline: Annotated[
        bool, Opt(help="Also train on the labeled samples alone (the supervised baseline).")
    ] = True,
    quick: StudyQuickOpt = False,
    resume: StudyResumeOpt = False,
    plot: StudyPlotOpt = None,
    markdown: PageMarkdownOpt = None,
    thread_count: ThreadsOpt = 1,
    quiet: QuietOpt = False,
) -> None:
    """Semi-supervised digits: K labels per class, FixMatch on the rest, with and without MIR/HDR terms.

    Tabulates test accuracy (mean ± std over seeds) per K and setting — the supervised baseline, FixMatch,
    FixMatch with the MIR/HDR regulariser (nc/detached form) on labels and confident pseudo-labels — and plots it.
    A killed study continues with --resume.
    """
    from dataclasses import replace

    from nc_audit.cli.progress import make_tracker
    from nc_audit.core.threads import torch_threads
    from nc_audit.experiments.studies.semi_supervised import COLUMNS, SemiSupervisedStudy, run_semi_supervised
    from nc_audit.report.study_pages import (
        SEMI_SUPERVISED_GROUPS,
        plot_semi_supervised,
        semi_supervised_line,
        semi_supervised_page,
        study_table,
    )
    from nc_audit.report.tables_markdown import page_text, table_text

    markdown, plot = plan_study_outputs(out, markdown, plot, "semi_supervised.png", None)
    study = SemiSupervisedStudy.quick() if quick else SemiSupervisedStudy()
    if labels_per_class is not None:
        study = replace(study, labels_per_class=parse_numbers(labels_per_class, "--labels-per-class", int))
    if weights is not None:
        study = replace(study, weights=parse_numbers(weights, "--weights"))
    if seeds is not None:
        study = replace(study, seeds=tuple(range(seeds)))
    if steps is not None:
        study = replace(study, recipe=replace(study.recipe, steps=steps))
    study = replace(study, supervised_baseline=baseline)

    with torch_threads(thread_count), make_tracker(quiet) as tracker:
        document = run_semi_supervised(
            out, study, resume=resume, tracker=tracker, on_record=run_line(semi_supervised_line)
        )
    table = study_table(document, SEMI_SUPERVISED_GROUPS, [(name, header) for name, header, _ in COLUMNS])
    print_stdout(table_text(table))
    write_outputs(page_text(semi_supervised_page(document, table)), markdown, plot,
                  lambda path: plot_semi_supervised(document, path))  # fmt: skip


@study_app.command("regularizer", cls=Command)
@cli_errors
def regularizer_command(
    out: StudyOutOpt = Path("studies/regularizer"),
    weights: Annotated[
        str | None,
        Opt(
            metavar="LIST",
            help="Regulariser weights λ (λ_mir = λ_hdr), comma-separated. [default: 0,0.1,1; --quick: 0,1]",
        ),
    ] = None,
    seeds: StudySeedsOpt = None,
    epochs: Annotated[
        int | None,
        Opt(min=1, metavar="N", help="Epochs per run. [default: 300, the sample's recipe; --quick: 2]"),
    ] = None,
    quick: StudyQuickOpt = False,
    resume: StudyResumeOpt = False,
    plot: StudyPlotOpt = None,
    markdown: PageMarkdownOpt = None,
    thread_count: ThreadsOpt = 1,
    quiet: QuietOpt = False,
) -> None:
    """MIR/HDR regulariser: the sample model from scratch with λ ∈ {0, 0.1, 1} × form {nc/detached, max/trainable}.

    Tabulates test accuracy, NC1, MIR, HDR and H(K_W) (train features), mean ± std over seeds 0–2, and
    plots them against λ. A killed study continues with --resume.
    """
    from nc_audit.cli.progress import make_tracker
    from nc_audit.cli.regularizer_study import run_regularizer_command
    from nc_audit.core.threads import torch_threads

    markdown, plot = plan_study_outputs(out, markdown, plot, "regularizer.png", None)
    with torch_threads(thread_count), make_tracker(quiet) as tracker:
        run_regularizer_command(out, markdown, plot, tracker, quick=quick, resume=resume, weights=weights,
                                seeds=seeds, epochs=epochs)  # fmt: skip


@study_app.command("lmc", cls=Command)
@cli_errors
def lmc_command(
    out: StudyOutOpt = Path("studies/lmc"),
    spawn_epochs: Annotated[
        str | None,
        Opt(
            metavar="LIST",
            help="Epochs k at which the parent spawns its two children, comma-separated, each below --epochs. "
            "[default: 0,1,2,5,10,20,50,100; --quick: 0,2]",
        ),
    ] = None,
    seeds: StudySeedsOpt = None,
    epochs: Annotated[
        int | None,
        Opt(min=1, metavar="N", help="Epochs of every run. [default: 300, the sample's recipe; --quick: 4]"),
    ] = None,
    steps: Annotated[
        int | None,
        Opt(
            min=3,
            metavar="N",
            help="α values of each path, an odd number (α = 0.5 on it). [default: 11; --quick: 5]",
        ),
    ] = None,
    independent: Annotated[
        bool, Opt(help="Also the control: two runs from different inits and batch orders per seed.")
    ] = True,
    quick: StudyQuickOpt = False,
    resume: StudyResumeOpt = False,
    plot: StudyPlotOpt = None,
    markdown: PageMarkdownOpt = None,
    thread_count: ThreadsOpt = 1,
    quiet: QuietOpt = False,
) -> None:
    """Linear mode connectivity (Frankle et al.'s instability analysis) with MIR/HDR along every path.

    Per seed, the sample model's parent is trained to each spawn epoch k; two children continue from its
    state in different batch orders to the end; the straight path between them (and between two independent
    runs) is evaluated as `interpolate` does. Tabulates loss and error barriers, the MIR dip, the HDR rise and
    NC1 at α = 0.5, mean ± std over seeds, and plots them against k. A killed study continues with --resume.
    """
    from nc_audit.cli.lmc_study import build_study, run_lmc_command
    from nc_audit.cli.progress import make_tracker
    from nc_audit.core.threads import torch_threads

    study = build_study(quick=quick, spawn_epochs=spawn_epochs, seeds=seeds, epochs=epochs, steps=steps,
                        independent=independent)  # fmt: skip
    study.validate()
    from nc_audit.experiments.studies.lmc_pairs import planned_files

    markdown, plot = plan_study_outputs(out, markdown, plot, "lmc.png", None, planned_files(out, study))
    with torch_threads(thread_count), make_tracker(quiet) as tracker:
        run_lmc_command(out, markdown, plot, tracker, study, resume=resume)


@study_app.command("prune", cls=Command)
@cli_errors
def prune_command(
    out: StudyOutOpt = Path("studies/prune-seeds"),
    sparsities: Annotated[
        str | None,
        Opt(
            metavar="LIST",
            help="Shares of the weights to prune, comma-separated, each in [0, 1). "
            "[default: 0,0.3,0.5,0.7,0.8,0.9,0.95; --quick: 0,0.8]",
        ),
    ] = None,
    seeds: StudySeedsOpt = None,
    epochs: Annotated[
        int | None,
        Opt(min=1, metavar="N", help="Epochs per run. [default: 300, the sample's recipe; --quick: 2]"),
    ] = None,
    quick: StudyQuickOpt = False,
    resume: StudyResumeOpt = False,
    plot: StudyPlotOpt = None,
    markdown: PageMarkdownOpt = None,
    thread_count: ThreadsOpt = 1,
    quiet: QuietOpt = False,
) -> None:
    """Magnitude pruning over seeds: the sample model trained from scratch per seed, pruned at each sparsity.

    Global magnitude ranking, the head dense, no fine-tuning (as `nc-audit prune`). Tabulates the weights
    kept, train and test accuracy, NC1, NC4, MIR and HDR (train features), mean ± std over seeds 0–2, and
    plots them against the sparsity. A killed study continues with --resume without training again.
    """
    from nc_audit.cli.progress import make_tracker
    from nc_audit.cli.prune_study import build_study, run_prune_study_command
    from nc_audit.core.threads import torch_threads
    from nc_audit.experiments.studies.prune_seeds import planned_files

    study = build_study(quick=quick, sparsities=sparsities, seeds=seeds, epochs=epochs)
    study.validate()
    markdown, plot = plan_study_outputs(
        out, markdown, plot, "pruning_seeds.png", None, planned_files(out, study)
    )
    with torch_threads(thread_count), make_tracker(quiet) as tracker:
        run_prune_study_command(out, markdown, plot, tracker, study, resume=resume)
