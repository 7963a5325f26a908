"""`nc-audit prune`: magnitude-prune a checkpoint at several sparsities and measure each, as table, JSON, PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from nc_audit.cli.common import Format, cli_errors, print_stdout, stderr
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
    required_data,
)
from nc_audit.cli.study import parse_numbers, run_line, threads

Opt = typer.Option

#: Table columns: (summary column, header, how to read it from a record).
COLUMNS = (
    ("kept", "kept", lambda r: r["kept"]["fraction"]),
    ("accuracy", "accuracy", lambda r: r["accuracy"]),
    ("test_accuracy", "test accuracy", lambda r: r["test_accuracy"]),
    ("nc1", "NC1", lambda r: r["report"]["metrics"]["nc1"]),
    ("nc4", "NC4", lambda r: r["report"]["metrics"]["nc4"]),
    ("mir", "MIR", lambda r: r["report"]["metrics"]["mir"]),
    ("hdr", "HDR", lambda r: r["report"]["metrics"]["hdr"]),
)


DataArg = required_data("Dataset to measure on (and to fine-tune on)")


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
    from nc_audit.experiments.prune import PruneSettings, run_pruning
    from nc_audit.experiments.studies.records import json_text
    from nc_audit.models.spec import ModelSpec

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

    def describe(record: dict[str, Any]) -> str:
        metrics = record["report"]["metrics"]
        test = record["test_accuracy"]
        return (f"sparsity {record['sparsity']:g} (kept {record['kept']['fraction']:.4f}): accuracy "
                f"{record['accuracy']:.4f}{'' if test is None else f', test {test:.4f}'}, NC1 {_num(metrics['nc1'])}, "
                f"MIR {_num(metrics['mir'])}, HDR {_num(metrics['hdr'])}")  # fmt: skip

    with threads(thread_count), make_tracker(quiet) as tracker:
        document = run_pruning(checkpoint, data, out, settings, model=spec, resume=resume, tracker=tracker,
                               on_record=run_line(describe))  # fmt: skip
    table = pruning_table(document)
    text = pruning_markdown(document, table)
    if stdout_format == Format.json:
        print_stdout(json_text(document))
    else:
        print_stdout(table if stdout_format == Format.table else text)
    from nc_audit.io.guards.atomic import atomic_write_text

    if json_path is not None:
        atomic_write_text(json_path, json_text(document))
    atomic_write_text(markdown, text)
    plot_pruning(document, plot)
    stderr.print(f"wrote {out / 'pruning.json'}, {markdown}, {plot}", markup=False)


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    from nc_audit.experiments.studies.summary import summarise

    return summarise(document["records"], ["sparsity"], [(name, get) for name, _, get in COLUMNS])


def pruning_table(document: dict[str, Any]) -> str:
    from nc_audit.report.studies import markdown_table

    return markdown_table(
        _rows(document), [("sparsity", "sparsity")], [(name, header) for name, header, _ in COLUMNS]
    )


def pruning_markdown(document: dict[str, Any], table: str) -> str:
    settings = document["settings"]
    head = "the head included" if settings["include_head"] else "the head left dense"
    tuned = (
        f"every model (sparsity 0 too, the control) fine-tuned {settings['finetune_epochs']} epoch(s) with its masks kept (Adam, lr "
        f"{settings['lr']:g}, batch {settings['batch_size']})"
        if settings["finetune_epochs"]
        else "no fine-tuning after pruning"
    )
    mir_nc = document["targets"].get("mir")
    return "\n".join([
        f"# Magnitude pruning of `{document['checkpoint']['path']}` on {document['data']} (`nc-audit prune`)",
        "",
        f"Scope {settings['scope']} (weights of every Linear/Conv layer, {head}); {tuned}. \"kept\": share of "
        f"the pruned layers' weights kept. Accuracy, NC1, NC4, MIR, HDR on the {settings['split']} split "
        f"(MIR_NC = {mir_nc:.4f}); test accuracy on the test split.",
        "",
        table,
    ])  # fmt: skip


def plot_pruning(document: dict[str, Any], path: Path) -> None:
    from nc_audit.report.studies import Panel, geometry_panels, plot_study

    panels = [Panel("accuracy", f"accuracy ({document['settings']['split']})"), Panel("test_accuracy", "test accuracy"),
              *geometry_panels(document["targets"])]  # fmt: skip
    rows = _rows(document)
    if all(row["test_accuracy"]["mean"] is None for row in rows):
        panels = [panel for panel in panels if panel.column != "test_accuracy"]
    name = Path(document["checkpoint"]["path"]).name
    plot_study(rows, "sparsity", panels, path, xlabel="sparsity",
               title=f"magnitude pruning ({document['settings']['scope']}) of {name} on {document['data']}")  # fmt: skip
