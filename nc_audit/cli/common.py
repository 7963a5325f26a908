"""What every command shares: turning errors into exit codes, and writing/gating reports."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from typer.core import TyperCommand

from nc_audit.core.errors import InputError
from nc_audit.core.signals import Terminated, raise_if_terminated
from nc_audit.report.consoles import new_console

if TYPE_CHECKING:
    from nc_audit.report.model import Trajectory

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT = 0, 1, 2

stderr = new_console(stderr=True, highlight=False, soft_wrap=True)


class Format(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Estimator(str, Enum):
    auto = "auto"
    exact = "exact"
    slq = "slq"


def command_group(help_text: str) -> typer.Typer:
    """A group of sub-commands (``nc-audit demo|study|cache``) with the app's help conventions: Click's
    plain help, which fits 80 columns, and the help when no sub-command is given."""
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None)


class Command(TyperCommand):
    """A command whose help names each argument by its metavar alone (``CHECKPOINT``, not
    ``CHECKPOINT <path>`` or ``<list[Path]>``); every nc-audit command uses it (``cls=Command``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if getattr(param, "param_type_name", "") == "argument" and param.metavar:
                param.display_type_rich = lambda ctx: None  # type: ignore[attr-defined]  # typer's TyperArgument method; self.params is typed click.Parameter


def debug_enabled() -> bool:
    """--debug (or NC_AUDIT_DEBUG=1) shows tracebacks instead of one-line errors."""
    return os.environ.get("NC_AUDIT_DEBUG", "") not in ("", "0")


def fail(message: str) -> typer.Exit:
    """Print one error line on stderr and return the exit for bad input (code 2). The message may quote
    paths and names from inputs: control characters and Rich markup are escaped (report/escape.py)."""
    from nc_audit.report.escape import terminal

    stderr.print(f"[bold red]nc-audit: error:[/] {terminal(message)}", markup=True)
    return typer.Exit(EXIT_BAD_INPUT)


def wrote(path: object) -> None:
    """Say on stderr that a file was written, its name shown verbatim (escaped, never taken as markup)."""
    from nc_audit.report.escape import terminal

    stderr.print(f"wrote {terminal(path)}", markup=True, highlight=False)


def cli_errors(command: F) -> F:
    """Run a command so that bad input ends in one stderr line and exit code 2, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = command(*args, **kwargs)
            raise_if_terminated()  # a signal whose exception was swallowed still ends the run as one
            return result
        except Terminated as error:
            stderr.print(f"nc-audit: terminated by signal {error.signal}; temporary files removed")
            raise
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except InputError as error:
            if debug_enabled():
                raise
            raise fail(str(error)) from None
        except KeyboardInterrupt:
            stderr.print("nc-audit: interrupted")
            raise typer.Exit(130) from None
        except (OSError, MemoryError) as error:
            if debug_enabled():
                raise
            raise fail(f"{type(error).__name__}: {error}") from None
        except Exception as error:  # an unforeseen failure still ends in one line; --debug shows where
            if debug_enabled():
                raise
            raise fail(f"{type(error).__name__}: {error} (rerun with --debug for the traceback)") from None

    return wrapper  # type: ignore[return-value]  # functools.wraps: the wrapper takes and returns what command does


def emit_results(result: Trajectory, output_format: str, files: Mapping[str, Path | None]) -> None:
    """Print ``result`` on stdout in ``output_format``, write each requested file by its format's name
    (``{"json": PATH, "junit": PATH, ...}``, atomically, in order), then append the GitHub step summary.
    Every format comes from one registry (report/formats/registry.py)."""
    from nc_audit.report.formats import registry
    from nc_audit.report.formats.step_summary import StepSummaryFormat

    registry.stdout_format(output_format).show(result)
    for name, path in files.items():
        if path is not None:
            output = registry.get(name)
            output.write(result, path)
            if output.announce:
                wrote(path)
    StepSummaryFormat().emit(result)


def write_html(path: Path, html: str) -> None:
    """Write an HTML report atomically and say where."""
    from nc_audit.io.guards.atomic import atomic_write_text

    atomic_write_text(path, html)
    wrote(path)


def exit_if_failed(failed: int) -> None:
    """Exit 1 with a one-line count when any check failed."""
    if failed:
        stderr.print(f"nc-audit: {failed} check(s) failed")
        raise typer.Exit(EXIT_CHECK_FAILED)


def print_stdout(text: str) -> None:
    """Machine output on stdout, exactly as given (no Rich wrapping; report/formats/base.py)."""
    from nc_audit.report.formats.base import write_stdout

    write_stdout(text)
