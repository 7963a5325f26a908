"""`nc-audit extract`: a model's penultimate-layer features on a dataset, written as an HDF5 dump."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nc_audit.cli.common import cli_errors, wrote
from nc_audit.cli.options import (
    AllowExternalOpt,
    ContextOpt,
    DataArgOpt,
    DeviceOpt,
    HeadOpt,
    LabelColumnOpt,
    ModelArgOpt,
    ModelOpt,
    PoolOpt,
    QuietOpt,
    Task,
    TaskOpt,
    TextColumnOpt,
    WorkersOpt,
    data_option,
)
from nc_audit.cli.pool import head_with_pool
from nc_audit.core.errors import InputError

Opt = typer.Option


DataArg = Annotated[str, data_option("Dataset to extract features from")]


@cli_errors
def extract_command(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            metavar="CHECKPOINT",
            help="Checkpoint (.pt/.pth/.bin/.ckpt/.safetensors) or a Hugging Face save_pretrained folder.",
            show_default=False,
        ),
    ],
    data: DataArg,
    out: Annotated[
        Path,
        Opt(
            "--out",
            "-o",
            metavar="DUMP",
            help="Dump to write (HDF5, nc-audit-features/1); written atomically.",
        ),
    ],
    split: Annotated[
        str | None,
        Opt(metavar="NAMES", help="Comma-separated splits to extract, e.g. train,test. [default: all]"),
    ] = None,
    model: ModelOpt = None,
    model_arg: ModelArgOpt = None,
    head: HeadOpt = None,
    pool: PoolOpt = None,
    batch_size: Annotated[int, Opt(min=1, metavar="N", help="Samples per forward pass.")] = 512,
    device: DeviceOpt = None,
    quiet: QuietOpt = False,
    allow_external_data: AllowExternalOpt = False,
    task: TaskOpt = Task.classification,
    context: ContextOpt = None,
    text_column: TextColumnOpt = "text",
    data_arg: DataArgOpt = None,
    workers: WorkersOpt = 0,
    label_column: LabelColumnOpt = None,
) -> None:
    """Extract features (the head's input), labels, logits and the head into an HDF5 dump."""
    from nc_audit.io.checkpoints.container import check_checkpoint_file
    from nc_audit.io.data.stream_spec import compose
    from nc_audit.io.hdf5.guard import external_data_allowed
    from nc_audit.io.plan.outputs import plan_outputs
    from nc_audit.io.plan.preflight import data_file

    if task is not Task.next_token:  # a streamed source's arguments travel in its spec
        data = (
            compose(data, data_arg, workers=workers, text_column=text_column, label_column=label_column)
            or data
        )
    plan_outputs(
        {"--out": out}, [checkpoint, data_file(data)], model=model
    )  # the dump never replaces an input
    check_checkpoint_file(checkpoint)  # before torch is loaded
    from nc_audit.cli.progress import make_tracker
    from nc_audit.cli.project import project_device
    from nc_audit.core.devices import resolve_device
    from nc_audit.distributed import is_main_process
    from nc_audit.models.extract import extract
    from nc_audit.models.spec import ModelSpec

    if task is Task.next_token:
        from nc_audit.models.next_token import check_next_token_options, extract_next_token

        check_next_token_options(model, model_arg, head, split)
        with make_tracker(quiet, enabled=is_main_process()) as tracker:  # one bar under torchrun
            path = extract_next_token(
                checkpoint,
                data,
                out,
                context=context,
                text_column=text_column,
                device=resolve_device(project_device(device)),
                tracker=tracker,
            )
        if is_main_process():
            wrote(path)
        return
    from nc_audit.io.data.corpus import is_corpus
    from nc_audit.io.data.stream_spec import parse_stream_spec

    if is_corpus(data) and parse_stream_spec(data) is None:  # a .jsonl table is data for a classifier
        raise InputError(
            f"{data}: a corpus; extract a causal language model folder's features with --task next-token"
        )
    splits = [name.strip() for name in split.split(",") if name.strip()] if split else None
    spec = ModelSpec.from_options(model, model_arg, head_with_pool(head, pool), project_device(device))
    with make_tracker(quiet) as tracker, external_data_allowed(allow_external_data):
        path = extract(
            checkpoint, data, out, splits=splits, model=spec, batch_size=batch_size, tracker=tracker
        )
    wrote(path)
