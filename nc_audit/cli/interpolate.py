"""`nc-audit interpolate`: linear mode connectivity between two checkpoints, as a table, JSON and a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from nc_audit.cli.common import Format, cli_errors, print_stdout, stderr, wrote
from nc_audit.cli.options import (
    DeviceOpt,
    FormatOpt,
    HeadOpt,
    JsonOpt,
    ModelArgOpt,
    ModelOpt,
    QuietOpt,
    data_option,
)
from nc_audit.report.escape import terminal

Opt = typer.Option


DataArg = Annotated[str, data_option("Dataset to evaluate on")]


@cli_errors
def interpolate_command(
    a: Annotated[Path, typer.Argument(metavar="A", help="First checkpoint (α = 0).", show_default=False)],
    b: Annotated[
        Path,
        typer.Argument(metavar="B", help="Second checkpoint (α = 1), same architecture.", show_default=False),
    ],
    data: DataArg,
    steps: Annotated[
        int, Opt(metavar="N", help="Number of α values from 0 to 1, both ends included (at least 2).")
    ] = 11,
    split: Annotated[
        str, Opt(metavar="NAME", help="Split of the dataset to evaluate (class means and NC4 use it too).")
    ] = "train",
    plot: Annotated[
        Path | None,
        Opt(
            metavar="PATH",
            help="Write a PNG: accuracy, loss, NC1, NC4, MIR and HDR against α (NC targets dashed).",
        ),
    ] = None,
    json_path: JsonOpt = None,
    output_format: FormatOpt = None,
    model: ModelOpt = None,
    model_arg: ModelArgOpt = None,
    head: HeadOpt = None,
    reset_endpoints: Annotated[
        bool,
        Opt(
            "--reset-endpoints",
            help="Recompute BatchNorm statistics at α = 0 and 1 too (interior α always are); then the "
            "endpoints no longer equal measure.",
        ),
    ] = False,
    device: DeviceOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Evaluate the straight line θ(α) = (1−α)·θ_A + α·θ_B between two checkpoints of one architecture.

    At each α: accuracy, mean cross-entropy, and every Neural Collapse and class-level matrix metric
    of the split's features with the interpolated head; --json writes schema nc-audit-interpolation/1.
    Exit 2 on bad input (e.g. two architectures).
    """
    from nc_audit.cli.project import project_device, project_format
    from nc_audit.io.plan.outputs import plan_outputs
    from nc_audit.io.plan.preflight import data_file

    stdout_format = project_format(output_format)
    plan_outputs({"--json": json_path, "--plot": plot}, [a, b, data_file(data)], model=model)
    from nc_audit.cli.progress import make_tracker
    from nc_audit.experiments.interpolate import plot_interpolation, run_interpolation
    from nc_audit.io.guards.atomic import atomic_write_text
    from nc_audit.models.spec import ModelSpec

    with make_tracker(quiet) as tracker:
        result = run_interpolation(
            a,
            b,
            data,
            steps=steps,
            split=split,
            model=ModelSpec.from_options(model, model_arg, head, project_device(device)),
            tracker=tracker,
            reset_endpoints=reset_endpoints,
        )
    from nc_audit.report.interpolation import interpolation_markdown, print_interpolation

    document = result.to_dict()
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    if stdout_format == Format.json:
        print_stdout(text)
    elif stdout_format == Format.markdown:
        print_stdout(interpolation_markdown(document, result.metric_keys))
    else:
        print_interpolation(document, result.metric_keys)
    if stdout_format == Format.table:
        for note in result.notes:
            stderr.print(f"note: {terminal(note)}")
    if json_path is not None:
        atomic_write_text(json_path, text)
    if plot is not None:
        plot_interpolation(result, plot)
        wrote(plot)
