"""`nc-audit finetune`: fine-tune a checkpoint (or an adapter on cached features) with the CMA loss."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from nc_audit.cli.common import cli_errors, write_html
from nc_audit.cli.options import (
    AllowExternalOpt,
    DeviceOpt,
    HeadOpt,
    HtmlOpt,
    ModelArgOpt,
    ModelOpt,
    QuietOpt,
    data_option,
)
from nc_audit.report.numbers import fixed

Opt = typer.Option

DataOpt = Annotated[str | None, data_option("Dataset to fine-tune on (instead of --features)")]

#: Rows of the before/after table: (history key, label).
SUMMARY_ROWS = (
    ("loss", "loss"),
    ("train_accuracy", "train accuracy"),
    ("test_accuracy", "test accuracy"),
    ("nc1", "NC1"),
    ("mir", "MIR"),
    ("hdr", "HDR"),
)


@cli_errors
def finetune_command(
    checkpoint: Annotated[
        Path | None,
        typer.Argument(
            metavar="CHECKPOINT",
            help="Checkpoint to fine-tune (nc-audit's own, or any with --model). With --features it is "
            "optional and only supplies the initial head (default: the dump's /head).",
            show_default=False,
        ),
    ] = None,
    cma_weight: Annotated[
        float,
        Opt(
            "--cma-weight",
            metavar="FLOAT",
            help="λ in [0, 1]: loss = (1 − λ)·cross-entropy + λ·CMA.",
            show_default=False,
        ),
    ] = ...,  # type: ignore[assignment]  # typer's mark of a required option
    data: DataOpt = None,
    features: Annotated[
        Path | None,
        Opt(
            "--features",
            metavar="DUMP",
            help="Train a residual adapter + head on this HDF5 feature dump (/train, /test, /head) "
            "instead of the whole model on --data.",
        ),
    ] = None,
    anchors: Annotated[
        Path | None,
        Opt(
            metavar="PATH",
            help="C×d anchor matrix (.safetensors, .npy, or .h5 dataset 'anchors'). "
            "[default: a copy of the initial head rows]",
        ),
    ] = None,
    mir_weight: Annotated[
        float,
        Opt(
            metavar="FLOAT", help="Weight λ_mir of the batch MIR(K_Z, K_Y) term (form: --regularizer-target)."
        ),
    ] = 0.0,
    hdr_weight: Annotated[
        float, Opt(metavar="FLOAT", help="Weight λ_hdr of the batch HDR(K_Z, K_Y) term.")
    ] = 0.0,
    regularizer_target: Annotated[
        str,
        Opt(
            metavar="nc|max",
            help="nc: λ_mir·|MIR − MIR*| + λ_hdr·|HDR − HDR*| towards the batch's collapsed values; "
            "max: −λ_mir·MIR + λ_hdr·HDR (the first form). docs/METRICS.md.",
        ),
    ] = "nc",
    regularizer_head: Annotated[
        str,
        Opt(metavar="detached|trainable", help="Whether the MIR/HDR terms' gradient reaches the head rows."),
    ] = "detached",
    label_smoothing: Annotated[
        float,
        Opt(metavar="FLOAT", help="Label smoothing ε in [0, 1] of the cross-entropy (0: the plain loss)."),
    ] = 0.0,
    epochs: Annotated[int, Opt(metavar="N", help="Epochs to train (a resumed run may raise it).")] = 10,
    lr: Annotated[float, Opt(metavar="FLOAT", help="Adam learning rate (constant).")] = 1e-3,
    batch_size: Annotated[
        int, Opt(metavar="N", help="Global batch size (split across ranks under torchrun).")
    ] = 64,
    freeze_body: Annotated[bool, Opt("--freeze-body", help="Train the head only.")] = False,
    seed: Annotated[
        int, Opt(metavar="N", help="Seed of the model init, few-shot subset and data order.")
    ] = 0,
    out: Annotated[
        Path, Opt(metavar="DIR", help="Folder for epoch_XXX.pt, history.jsonl and final.pt.")
    ] = Path("finetune_run"),
    resume: Annotated[
        bool, Opt("--resume", help="Continue the run in --out from its newest complete checkpoint.")
    ] = False,
    model: ModelOpt = None,
    model_arg: ModelArgOpt = None,
    head: HeadOpt = None,
    train_samples_per_class: Annotated[
        int | None, Opt(metavar="K", help="Few-shot: train on K seeded samples of every class.")
    ] = None,
    adapter_hidden: Annotated[
        int | None, Opt(metavar="N", help="Hidden width of the --features adapter. [default: d]")
    ] = None,
    loss_shards: Annotated[
        int,
        Opt(
            metavar="N",
            help="Compute each batch's loss on N strided shards, as N torchrun ranks do (reproduces a DDP run).",
        ),
    ] = 1,
    device: DeviceOpt = None,
    html_path: HtmlOpt = None,
    quiet: QuietOpt = False,
    allow_external_data: AllowExternalOpt = False,
) -> None:
    """Fine-tune with L = (1 − λ)·CE + λ·CMA; checkpoint every epoch; print metrics before vs after.

    Runs under torchrun too (DistributedDataParallel; rank 0 writes). The run's checkpoints record
    --model and --model-arg, so measure needs no --model. Exit codes: 0 done, 2 bad input.
    """
    options = dict(locals())  # the parameters by name (nothing else is local yet): the run's settings
    from nc_audit.cli.finetune_options import finetune_config
    from nc_audit.io.hdf5.guard import external_data_allowed
    from nc_audit.io.plan.outputs import plan_outputs
    from nc_audit.io.plan.preflight import data_file, finetune_outputs

    inputs = [checkpoint, features, anchors, data_file(data)]
    outputs = {**finetune_outputs(out, inputs), "--html": html_path}
    plan_outputs(outputs, inputs, model=model)  # no file the run writes may be one it reads
    from nc_audit.cli.progress import make_tracker
    from nc_audit.distributed import is_main_process
    from nc_audit.train import finetune

    config = finetune_config(options)  # checked on construction: one range check per setting
    is_main = is_main_process()
    with make_tracker(quiet, enabled=is_main) as tracker, external_data_allowed(allow_external_data):
        result = finetune(config, tracker)
    if is_main:
        render_summary(result.before, result.after, result.final_path, result.notes, result.adapted_dump)
        if html_path is not None:
            from nc_audit.report.html import finetune_html

            write_html(html_path, finetune_html(finetune_document(result, config)))


def render_summary(
    before: dict[str, Any],
    after: dict[str, Any],
    final_path: Path,
    notes: list[str],
    adapted_dump: Path | None = None,
) -> None:
    """A small Rich table on stdout: epoch 0 (before training) vs the last epoch; for a --features run,
    the dump of the adapted features too (the one to measure; the input dump holds the backbone's)."""
    from rich.table import Table

    from nc_audit.report.consoles import new_console
    from nc_audit.report.escape import terminal

    table = Table(title=f"fine-tuning: epoch 0 → {after.get('epoch')}")
    table.add_column("metric")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    for key, label in SUMMARY_ROWS:
        table.add_row(label, fixed(before.get(key)), fixed(after.get(key)))
    console = new_console()
    console.print(table)
    for note in notes:
        console.print(f"note: {terminal(note)}")
    console.print(f"final checkpoint: {terminal(final_path)}")
    if adapted_dump is not None:
        console.print(
            f"adapted features: {terminal(adapted_dump)} (measure this dump, or {terminal(final_path)} with "
            "--data set to the "
            "backbone's dump; the backbone's dump alone gives the pre-adapter numbers)"
        )


def finetune_document(result: Any, config: Any) -> dict[str, Any]:
    """The plain data the HTML report renders: the settings, every epoch's history, before/after."""
    settings = {
        key: str(value) if isinstance(value, Path) else value
        for key, value in vars(config).items()
        if value is not None and not key.startswith("_")
    }
    return {
        "settings": settings,
        "history": list(result.history),
        "rows": [[label, result.before.get(key), result.after.get(key)] for key, label in SUMMARY_ROWS],
        "final_path": str(result.final_path),
        "notes": list(result.notes),
    }
