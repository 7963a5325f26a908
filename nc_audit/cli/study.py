"""`nc-audit study ...`: the paper's claims measured on small models — label smoothing, semi-supervised.

The library (nc_audit.experiments.studies) trains, measures and keeps resumable records; this module
parses options, prints one line per finished run, and renders the results as a Markdown table and a PNG.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from nc_audit.cli.common import Command, cli_errors, command_group, print_stdout, stderr
from nc_audit.cli.options import QuietOpt
from nc_audit.core.errors import InputError

Opt = typer.Option

study_app = command_group(
    "Studies: train small models under the settings of a claim, measure them, tabulate mean ± std."
)

OutOpt = Annotated[
    Path,
    Opt(
        "--out", "-o", metavar="DIR", help="Study folder: study.json, runs.jsonl, results.json, checkpoints."
    ),
]
ResumeOpt = Annotated[
    bool, Opt("--resume", help="Continue the study in --out: finished runs are read back, the rest run.")
]
QuickOpt = Annotated[
    bool, Opt("--quick", help="A few seconds: fewer runs, a smaller model, a short schedule.")
]
SeedsOpt = Annotated[
    int | None, Opt(min=1, metavar="N", help="Seeds 0..N-1 per setting. [default: 3; --quick: 1]")
]
PlotOpt = Annotated[Path | None, Opt(metavar="PATH", help="Where to write the PNG. [default: in --out]")]
MarkdownOpt = Annotated[
    Path | None,
    Opt("--markdown", metavar="PATH", help="Where to write the Markdown page. [default: --out/RESULTS.md]"),
]
ThreadsOpt = Annotated[
    int,
    Opt(
        "--threads",
        min=1,
        metavar="N",
        help="Torch CPU threads; the models are tiny, and on shared cores more threads spin-wait.",
    ),
]


def parse_numbers(text: str, option: str, kind: type[float] | type[int] = float) -> tuple[Any, ...]:
    """``0,0.05,0.1`` → (0.0, 0.05, 0.1) (``kind=int``: ``4,10`` → (4, 10)); InputError naming the option
    otherwise."""
    noun, example = ("integers", "4,10") if kind is int else ("numbers", "0,0.1,0.2")
    try:
        values = tuple(kind(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InputError(f"{option} {text!r}: expected comma-separated {noun} such as {example}") from None
    if not values:
        raise InputError(f"{option} {text!r}: give at least one {noun[:-1]}")
    return values


@contextlib.contextmanager
def threads(count: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_line(describe: Callable[[dict[str, Any]], str]) -> Callable[[int, int, dict[str, Any], bool], None]:
    """The per-run callback: ``[3/12] ε=0.1 seed 2: test accuracy 0.9822, … (12.3 s)`` on stderr."""

    def show(index: int, total: int, record: dict[str, Any], resumed: bool) -> None:
        when = "read back from runs.jsonl" if resumed else f"{record.get('seconds', 0.0):.1f} s"
        stderr.print(f"[{index}/{total}] {describe(record)} ({when})", markup=False)

    return show


def plan_study_outputs(
    out: Path, markdown: Path | None, plot: Path | None, plot_name: str, data: str | None
) -> tuple[Path, Path]:
    """The study's Markdown page and plot (defaults in --out), checked with its records against its
    data file before anything is created (nc_audit.io.plan.outputs)."""
    from nc_audit.io.plan.outputs import files_in, plan_outputs
    from nc_audit.io.plan.preflight import STUDY_FILES, data_file

    markdown, plot = markdown or out / "RESULTS.md", plot or out / plot_name
    plan_outputs({**files_in(out, STUDY_FILES), "--markdown": markdown, "--plot": plot}, [data_file(data)])
    return markdown, plot


def write_outputs(text: str, markdown: Path, plot: Path, draw: Callable[[Path], None]) -> None:
    from nc_audit.io.guards.atomic import atomic_write_text

    atomic_write_text(markdown, text)
    draw(plot)
    stderr.print(f"wrote {markdown}, {plot}", markup=False)


def _metric(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


@study_app.command("label-smoothing", cls=Command)
@cli_errors
def label_smoothing_command(
    out: OutOpt = Path("studies/label-smoothing"),
    epsilons: Annotated[
        str | None,
        Opt(
            metavar="LIST",
            help="Label smoothing values ε, comma-separated. [default: 0,0.05,0.1,0.2; --quick: 0,0.1]",
        ),
    ] = None,
    seeds: SeedsOpt = None,
    epochs: Annotated[
        int | None, Opt(min=1, metavar="N", help="Epochs per run. [default: 300, the sample's recipe]")
    ] = None,
    data: Annotated[
        str,
        Opt(
            metavar="NAME|PATH", help="Dataset (inputs as one array): digits, gaussian:..., a .npz/.h5 file."
        ),
    ] = "digits",
    quick: QuickOpt = False,
    resume: ResumeOpt = False,
    plot: PlotOpt = None,
    markdown: MarkdownOpt = None,
    thread_count: ThreadsOpt = 1,
    quiet: QuietOpt = False,
) -> None:
    """Label smoothing: the sample model trained from scratch with ε ∈ {0, 0.05, 0.1, 0.2}, seeds 0–2.

    Tabulates test accuracy, NC1, MIR and HDR (train features), mean ± std over seeds, and plots them
    against ε. A killed study continues with --resume.
    """
    from dataclasses import replace

    from nc_audit.cli.progress import make_tracker
    from nc_audit.cli.study_render import label_smoothing_markdown, plot_label_smoothing
    from nc_audit.experiments.studies.label_smoothing import LabelSmoothingStudy, run_label_smoothing
    from nc_audit.report.studies import markdown_table

    markdown, plot = plan_study_outputs(out, markdown, plot, "label_smoothing.png", data)
    study = LabelSmoothingStudy.quick() if quick else LabelSmoothingStudy()
    study = replace(study, data=data)
    if epsilons is not None:
        study = replace(study, epsilons=parse_numbers(epsilons, "--epsilons"))
    if seeds is not None:
        study = replace(study, seeds=tuple(range(seeds)))
    if epochs is not None:
        study = replace(study, recipe=replace(study.recipe, epochs=epochs))

    def describe(record: dict[str, Any]) -> str:
        metrics = record["train"]["metrics"]
        return (f"ε={record['epsilon']:g} seed {record['seed']}: test accuracy {record['test']['accuracy']:.4f}, "
                f"NC1 {_metric(metrics['nc1'])}, MIR {_metric(metrics['mir'])}, HDR {_metric(metrics['hdr'])}")  # fmt: skip

    with threads(thread_count), make_tracker(quiet) as tracker:
        document = run_label_smoothing(
            out, study, resume=resume, tracker=tracker, on_record=run_line(describe)
        )
    from nc_audit.experiments.studies.label_smoothing import COLUMNS

    table = markdown_table(
        document["summary"], [("epsilon", "ε")], [(name, header) for name, header, _ in COLUMNS]
    )
    text = label_smoothing_markdown(document, table)
    print_stdout(table)
    write_outputs(text, markdown, plot, lambda path: plot_label_smoothing(document, path))


@study_app.command("semi-supervised", cls=Command)
@cli_errors
def semi_supervised_command(
    out: OutOpt = Path("studies/semi-supervised"),
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
    seeds: SeedsOpt = None,
    steps: Annotated[
        int | None, Opt(min=1, metavar="N", help="Optimizer steps per run. [default: 2000; --quick: 20]")
    ] = None,
    baseline: Annotated[
        bool, Opt(help="Also train on the labeled samples alone (the supervised baseline).")
    ] = True,
    quick: QuickOpt = False,
    resume: ResumeOpt = False,
    plot: PlotOpt = None,
    markdown: MarkdownOpt = None,
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
    from nc_audit.cli.study_render import plot_semi_supervised, semi_supervised_markdown
    from nc_audit.experiments.studies.semi_supervised import COLUMNS, SemiSupervisedStudy, run_semi_supervised
    from nc_audit.report.studies import markdown_table

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

    def describe(record: dict[str, Any]) -> str:
        metrics, stats = record["train"]["metrics"], record["stats"]
        share = "" if stats["mask_rate"] is None else f", confident share {stats['mask_rate']:.3f}"
        return (f"K={record['labels_per_class']} {record['setting']} seed {record['seed']}: test accuracy "
                f"{record['test']['accuracy']:.4f}{share}, MIR {_metric(metrics['mir'])}, HDR {_metric(metrics['hdr'])}")  # fmt: skip

    with threads(thread_count), make_tracker(quiet) as tracker:
        document = run_semi_supervised(
            out, study, resume=resume, tracker=tracker, on_record=run_line(describe)
        )
    groups = [("labels_per_class", "labels/class"), ("setting", "setting")]
    table = markdown_table(document["summary"], groups, [(name, header) for name, header, _ in COLUMNS])
    print_stdout(table)
    write_outputs(semi_supervised_markdown(document, table), markdown, plot,
                  lambda path: plot_semi_supervised(document, path))  # fmt: skip


@study_app.command("regularizer", cls=Command)
@cli_errors
def regularizer_command(
    out: OutOpt = Path("studies/regularizer"),
    weights: Annotated[
        str | None,
        Opt(
            metavar="LIST",
            help="Regulariser weights λ (λ_mir = λ_hdr), comma-separated. [default: 0,0.1,1; --quick: 0,1]",
        ),
    ] = None,
    seeds: SeedsOpt = None,
    epochs: Annotated[
        int | None,
        Opt(min=1, metavar="N", help="Epochs per run. [default: 300, the sample's recipe; --quick: 2]"),
    ] = None,
    quick: QuickOpt = False,
    resume: ResumeOpt = False,
    plot: PlotOpt = None,
    markdown: MarkdownOpt = None,
    thread_count: ThreadsOpt = 1,
    quiet: QuietOpt = False,
) -> None:
    """MIR/HDR regulariser: the sample model from scratch with λ ∈ {0, 0.1, 1} × form {nc/detached, max/trainable}.

    Tabulates test accuracy, NC1, MIR, HDR and H(K_W) (train features), mean ± std over seeds 0–2, and
    plots them against λ. A killed study continues with --resume.
    """
    from nc_audit.cli.progress import make_tracker
    from nc_audit.cli.regularizer_study import run_regularizer_command

    markdown, plot = plan_study_outputs(out, markdown, plot, "regularizer.png", None)
    with threads(thread_count), make_tracker(quiet) as tracker:
        run_regularizer_command(out, markdown, plot, tracker, quick=quick, resume=resume, weights=weights,
                                seeds=seeds, epochs=epochs)  # fmt: skip
