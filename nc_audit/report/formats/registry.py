"""Every output format by name. Adding a format is one new module with a class implementing
:class:`~nc_audit.report.formats.base.OutputFormat` plus one line in :data:`BUILTIN` (or, from a plugin or a
test, one :func:`register` call). Formats are imported when first used, so the CLI starts fast."""

from __future__ import annotations

import importlib

from nc_audit.core.errors import InputError
from nc_audit.report.formats.base import OutputFormat, TextFormat

#: name → "module:Class" of the built-in formats.
BUILTIN: dict[str, str] = {
    "table": "nc_audit.report.formats.table:TableFormat",
    "json": "nc_audit.report.formats.json_out:JsonFormat",
    "markdown": "nc_audit.report.formats.markdown_out:MarkdownFormat",
    "junit": "nc_audit.report.formats.junit_out:JunitFormat",
    "html": "nc_audit.report.formats.html_out:HtmlFormat",
    "step-summary": "nc_audit.report.formats.step_summary:StepSummaryFormat",
    "plot": "nc_audit.report.formats.plot_out:PlotFormat",
    "layers-plot": "nc_audit.report.formats.layers_plot_out:LayersPlotFormat",
}
#: The formats ``--format`` prints on stdout (and ``format =`` in [tool.nc-audit] names), in help order.
STDOUT_FORMATS: list[str] = ["table", "json", "markdown"]
_LOADED: dict[str, OutputFormat] = {}


def register(output_format: OutputFormat, stdout: bool = False) -> OutputFormat:
    """Add a format (or replace one of the same name); ``stdout``: ``--format NAME`` may print it."""
    _LOADED[output_format.name] = output_format
    if stdout and output_format.name not in STDOUT_FORMATS:
        STDOUT_FORMATS.append(output_format.name)
    return output_format


def unregister(name: str) -> None:
    """Remove a format added with :func:`register` (built-in ones come back on the next :func:`get`)."""
    _LOADED.pop(name, None)
    if name in STDOUT_FORMATS and name not in ("table", "json", "markdown"):
        STDOUT_FORMATS.remove(name)


def get(name: str) -> OutputFormat:
    """The format called ``name``; InputError listing the known ones otherwise."""
    if name not in _LOADED:
        if name not in BUILTIN:
            known = ", ".join(dict.fromkeys([*BUILTIN, *_LOADED]))
            raise InputError(f"unknown output format {name!r}; known formats: {known}")
        module, cls = BUILTIN[name].split(":")
        _LOADED[name] = getattr(importlib.import_module(module), cls)()
    return _LOADED[name]


def text_format(name: str) -> TextFormat:
    """The text format called ``name`` (one that renders a document); InputError otherwise."""
    output_format = get(name)
    if not isinstance(output_format, TextFormat):
        raise InputError(f"the output format {name!r} is not text")
    return output_format


def stdout_format(name: str) -> TextFormat:
    """A format ``--format`` may print on stdout; InputError naming the choices otherwise."""
    output_format = get(name) if name in STDOUT_FORMATS else None
    if not isinstance(output_format, TextFormat):
        choices = ", ".join(repr(choice) for choice in STDOUT_FORMATS)
        raise InputError(f"{name!r} is not one of {choices}.")
    return output_format
