"""`nc-audit interpolate`: linear mode connectivity between two checkpoints, as a table, JSON and a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

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
from nc_audit.report.escape import markdown_code, markdown_text, terminal
from nc_audit.report.numbers import precise, short

Opt = typer.Option

#: Table columns after α: accuracy, loss, then every class-level metric (docs/METRICS.md order).
LEAD_COLUMNS = ("accuracy", "loss")
#: Short table headers for the long NC2 keys (M: centred class means, W: head rows).
SHORT_NAMES = {
    "nc1_cdnv": "cdnv",
    "nc2_equinorm_means": "eqnorm M",
    "nc2_equinorm_head": "eqnorm W",
    "nc2_equiangular_means": "eqangle M",
    "nc2_equiangular_head": "eqangle W",
    "nc2_maxangle_means": "maxangle M",
    "nc2_maxangle_head": "maxangle W",
}


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
    document = result.to_dict()
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    if stdout_format == Format.json:
        print_stdout(text)
    elif stdout_format == Format.markdown:
        print_stdout(render_markdown(document))
    else:
        render_table(document)
    if stdout_format == Format.table:
        for note in result.notes:
            stderr.print(f"note: {terminal(note)}")
    if json_path is not None:
        atomic_write_text(json_path, text)
    if plot is not None:
        plot_interpolation(result, plot)
        wrote(plot)


def _columns(document: dict[str, Any]) -> list[str]:
    keys: list[str] = []
    for record in document["records"]:
        keys.extend(key for key in record["metrics"] if key not in keys)
    return keys


def _fmt(value: float | None) -> str:
    """Four significant digits in the console's form (1e-4..1e6 plain, else scientific)."""
    return precise(None if value is None else float(short(value)))


def _row(record: dict[str, Any], keys: list[str]) -> list[str]:
    lead = [_fmt(record[key]) for key in LEAD_COLUMNS]
    return [f"{record['alpha']:.3g}", *lead, *(_fmt(record["metrics"].get(key)) for key in keys)]


def render_table(document: dict[str, Any]) -> None:
    """Rich table on stdout: one row per α, NC targets in the last row."""
    from rich.console import Console
    from rich.table import Table

    keys = _columns(document)
    table = Table(
        title=f"{terminal(document['a']['path'])} → {terminal(document['b']['path'])} on "
        f"{terminal(document['data'])} \\[{terminal(document['split'])}]",
        title_justify="left",
        header_style="bold",
    )
    headers = ["α", *LEAD_COLUMNS, *(SHORT_NAMES.get(key, key) for key in keys)]
    for name in headers:
        table.add_column(name, justify="right", no_wrap=True)
    for record in document["records"]:
        table.add_row(*_row(record, keys))
    targets = document["targets"]
    table.add_row("NC", "", "", *(_fmt(targets.get(key)) for key in keys), style="dim")
    needed = 1 + sum(max(len(name), 9) + 3 for name in headers)  # every cell whole: no ellipses in a CI log
    console = Console()
    console = console if console.width >= needed else Console(width=needed)
    console.print(table)
    console.print(
        "[dim]NC2 columns: M = centred class means, W = head rows; last row: values at Neural Collapse[/]"
    )


def render_markdown(document: dict[str, Any]) -> str:
    """A Markdown table: one row per α, NC targets in the last row."""
    keys = _columns(document)
    header = ["α", *LEAD_COLUMNS, *keys]
    lines = [
        f"## Interpolation {markdown_code(document['a']['path'])} → {markdown_code(document['b']['path'])} on "
        f"{markdown_code(document['data'])} \\[{markdown_text(document['split'])}]",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---:|" * len(header),
    ]
    lines += ["| " + " | ".join(_row(record, keys)) + " |" for record in document["records"]]
    targets = document["targets"]
    lines.append("| NC target | | | " + " | ".join(_fmt(targets.get(key)) for key in keys) + " |")
    return "\n".join(lines) + "\n"
