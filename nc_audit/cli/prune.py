"""`nc-audit prune`: magnitude-prune a checkpoint at several sparsities and measure each, as table, JSON, PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nc_audit.cli.common import Format, cli_errors, print_stdout, wrote
from nc_audit.cli.experiment_output import parse_numbers, run_line
from nc_audit.cli.options import (
    DeviceOpt,
    FormatOpt,
    HeadOpt,
    JsonOpt,
    ModelArgOpt,
    ModelOpt,
    PageMarkdownOpt,
    QuietOpt,
    ThreadsOpt,
    data_option,
)

Opt = typer.Option

DataArg = Annotated[str, data_option("Dataset to measure on (and to fine-tune on)")]


@cli_errors
def prune_command(
    checkpoint: Annotated[
        Path, typer.Argument(metavar="CHECKPOINT", help="Checkpoint to prune.", show_default=False)
    ],
    data: DataArg,
    sparsities: Annotated[
        str, Opt(metavar="LIST", help="Shares of the weights to prune, comma-separated, each in [0, 1).")
    ] = "0,0.3,0.5,0.7,0.8,0.9,0.95",
    scope: Annotated[
        str,
        Opt(
            metavar="[global|layer]",
            help="global: one |w| ranking over all pruned layers; layer: every layer loses the same share.",
        ),
    ] = "global",
    include_head: Annotated[
        bool, Opt("--include-head", help="Prune the classifier head too (default: it stays dense).")
    ] = False,
    finetune_epochs: Annotated[
        int,
        Opt(
            min=0,
            metavar="N",
            help="Fine-tune every model (sparsity 0 too) this many epochs with Adam, masks kept; 0: none.",
        ),
    ] = 0,
    lr: Annotated[float, Opt(metavar="FLOAT", help="Adam learning rate of the fine-tune.")] = 1e-3,
    batch_size: Annotated[int, Opt(min=1, metavar="N", help="Batch size of the fine-tune.")] = 64,
    seed: Annotated[int, Opt(min=0, metavar="N", help="Seed of the fine-tune's batch order.")] = 0,
    split: Annotated[
        str, Opt(metavar="NAME", help="Split whose metrics are measured (class means from train).")
    ] = "train",
    out: Annotated[
        Path,
        Opt("--out", "-o", metavar="DIR", help="Folder for the pruned checkpoints, records and outputs."),
    ] = Path("prune_run"),
    resume: Annotated[
        bool, Opt("--resume", help="Continue in --out: finished sparsities are read back.")
    ] = False,
    plot: Annotated[
        Path | None,
        Opt(metavar="PATH", help="PNG of accuracy, NC1, MIR, HDR against sparsity. [default: in --out]"),
    ] = None,
    json_path: JsonOpt = None,
    markdown: PageMarkdownOpt = None,
    output_format: FormatOpt = None,
    model: ModelOpt = None,
    model_arg: ModelArgOpt = None,
    head: HeadOpt = None,
    device: DeviceOpt = None,
    thread_count: ThreadsOpt = 1,
    quiet: QuietOpt = False,
) -> None:
    """Magnitude pruning at a list of sparsities, each pruned model measured (accuracy and every metric).

    Prunes the weights of every Linear/Conv layer (the head stays dense unless --include-head), each
    sparsity from the checkpoint's own weights; writes DIR/sparsity_S.pt, DIR/pruning.json, the table
    and the plot. Sparsity 0 is `measure CHECKPOINT --data DATA`. A killed run continues with --resume.
    --format prints the table (Markdown), the JSON (schema nc-audit-pruning/1) or the Markdown page.
    """
    from nc_audit.cli.project import project_device, project_format
    from nc_audit.io.plan.outputs import files_in, plan_outputs
    from nc_audit.io.plan.preflight import STUDY_FILES, data_file

    stdout_format = project_format(output_format)
    parsed = parse_numbers(sparsities, "--sparsities")
    markdown, plot = markdown or out / "RESULTS.md", plot or out / "pruning.png"
    names = [*STUDY_FILES, "pruning.json", *(f"sparsity_{s:.3f}.pt" for s in parsed)]
    outputs = {**files_in(out, names), "--markdown": markdown, "--plot": plot, "--json": json_path}
    plan_outputs(outputs, [checkpoint, data_file(data)], model=model)  # before anything is created
    from nc_audit.cli.progress import make_tracker
    from nc_audit.core.threads import torch_threads
    from nc_audit.experiments.prune import PruneSettings, run_pruning
    from nc_audit.experiments.prune_summary import HEADERS, pruning_summary
    from nc_audit.experiments.studies.records import json_text
    from nc_audit.io.guards.atomic import atomic_write_text
    from nc_audit.models.spec import ModelSpec
    from nc_audit.report.prune import plot_pruning, pruning_line, pruning_page, pruning_table
    from nc_audit.report.tables_markdown import page_text, table_text

    spec = ModelSpec.from_options(model, model_arg, head, project_device(device))

    settings = PruneSettings(
        sparsities=parsed,
        scope=scope,
        include_head=include_head,
        finetune_epochs=finetune_epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        split=split,
    )
    with torch_threads(thread_count), make_tracker(quiet) as tracker:
        document = run_pruning(checkpoint, data, out, settings, model=spec, resume=resume, tracker=tracker,
                               on_record=run_line(pruning_line))  # fmt: skip
    rows = pruning_summary(document)
    table = pruning_table(rows, HEADERS)
    text = page_text(pruning_page(document, table))
    if stdout_format == Format.json:
        print_stdout(json_text(document))
    else:
        print_stdout(table_text(table) if stdout_format == Format.table else text)
    if json_path is not None:
        atomic_write_text(json_path, json_text(document))
    atomic_write_text(markdown, text)
    plot_pruning(document, rows, plot)
    wrote(f"{out / 'pruning.json'}, {markdown}, {plot}")
