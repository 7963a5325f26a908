"""The `nc-audit` command line (Typer): parse options, call the library, render. Nothing else."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from nc_audit.cli.cache import cache_app
from nc_audit.cli.common import Command, fail
from nc_audit.cli.demo import demo_app
from nc_audit.cli.extract import extract_command
from nc_audit.cli.finetune import finetune_command
from nc_audit.cli.interpolate import interpolate_command
from nc_audit.cli.measure import measure_command
from nc_audit.cli.prune import prune_command
from nc_audit.cli.study import study_app
from nc_audit.cli.track import track_command
from nc_audit.core.errors import InputError
from nc_audit.core.limits import HEAD_MEMORY_VARIABLE, parse_size
from nc_audit.core.version import __version__

app = typer.Typer(
    name="nc-audit",
    help="Audit a classifier's last layer: Neural Collapse (NC1–NC4) and matrix information (H, MI, MIR, HDR).",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion: bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # Click's plain help: fits 80 columns, long option names never cut
)
app.command("measure", no_args_is_help=True, cls=Command)(measure_command)
app.command("extract", no_args_is_help=True, cls=Command)(extract_command)
app.command("track", no_args_is_help=True, cls=Command)(track_command)
app.command("finetune", no_args_is_help=True, cls=Command)(finetune_command)
app.command("interpolate", no_args_is_help=True, cls=Command)(interpolate_command)
app.command("prune", no_args_is_help=True, cls=Command)(prune_command)
app.add_typer(demo_app, name="demo")
app.add_typer(cache_app, name="cache")
app.add_typer(study_app, name="study")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nc-audit {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    max_head_memory: Annotated[
        str | None,
        typer.Option(
            "--max-head-memory",
            metavar="SIZE",
            envvar=HEAD_MEMORY_VARIABLE,
            help="Largest classifier head read whole, as float64 (C × d × 8 bytes), e.g. 8GiB; default 1GiB. "
            "A larger head is refused before it is read.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """nc-audit: how close is your classifier to Neural Collapse, and did it regress?"""
    if debug:
        os.environ["NC_AUDIT_DEBUG"] = "1"
    if max_head_memory is not None:
        try:
            os.environ[HEAD_MEMORY_VARIABLE] = str(parse_size(max_head_memory, "--max-head-memory"))
        except InputError as error:
            raise fail(str(error)) from None


def main() -> None:
    """Console-script entry point: SIGTERM, SIGHUP and SIGINT end the run through its clean-up code
    (temporary files removed; core/signals.py)."""
    from nc_audit.core.signals import exceptions_on_signals

    with exceptions_on_signals():
        app()
