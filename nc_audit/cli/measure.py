"""`nc-audit measure`: one checkpoint's report, rendered and gated."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nc_audit.cli.common import (
    EXIT_CHECK_FAILED,
    Device,
    Estimator,
    Format,
    cli_errors,
    print_stdout,
    stderr,
    write_outputs,
)
from nc_audit.cli.gating import apply_gates, resolve_settings

Opt = typer.Option


@cli_errors
def measure_command(
    source: Annotated[
        Path,
        typer.Argument(
            help="Checkpoint (.pt/.pth/.bin/.safetensors), or a dump (.h5) that holds /head.",
            show_default=False,
        ),
    ],
    features: Annotated[
        Path | None, Opt("--features", "-f", help="HDF5 feature dump (/features + /labels, or split groups).")
    ] = None,
    data: Annotated[
        str | None,
        Opt(
            "--data",
            "-d",
            help="Dataset to extract features from instead of --features: digits, gaussian[:k=v,...], modadd[:k=v,...], or a .npz/.h5 file with inputs and labels. Cached by checkpoint sha256 + dataset.",
        ),
    ] = None,
    model: Annotated[
        str | None,
        Opt(
            help="Architecture for a checkpoint that does not describe itself: package.module:factory or file.py:factory."
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        Opt(help="Feature cache folder for --data (default: $NC_AUDIT_CACHE or ~/.cache/nc-audit)."),
    ] = None,
    split: Annotated[
        str | None,
        Opt(
            help="Split of the dump to measure (default: train, or the root arrays). Non-train splits take the class means from train (NC4 on held-out data)."
        ),
    ] = None,
    head: Annotated[
        str | None,
        Opt(help="State-dict name of the classifier head (NAME.weight / NAME.bias); default: detected."),
    ] = None,
    output_format: Annotated[
        Format | None,
        Opt("--format", help="What to print on stdout: table, json or markdown. [default: table]"),
    ] = None,
    json_path: Annotated[
        Path | None, Opt("--json", help="Also write the JSON report (schema nc-audit-report/1) to PATH.")
    ] = None,
    markdown_path: Annotated[
        Path | None, Opt("--markdown", help="Also write the Markdown summary to PATH.")
    ] = None,
    junit_path: Annotated[
        Path | None, Opt("--junit", help="Also write a JUnit XML file, one test case per rule.")
    ] = None,
    fail_on: Annotated[
        list[str] | None,
        Opt("--fail-on", help="Rule 'METRIC OP VALUE' (e.g. 'nc1<=0.5'); repeatable; exit 1 if any fails."),
    ] = None,
    baseline: Annotated[
        Path | None,
        Opt(
            help="Report JSON to compare with: exit 1 if a metric moved away from its NC target by more than --tolerance."
        ),
    ] = None,
    tolerance: Annotated[
        float | None,
        Opt(help="Allowed increase of a metric's distance to its NC target vs --baseline. [default: 0]"),
    ] = None,
    device: Annotated[
        Device | None,
        Opt(help="Where the kernels run: auto (CUDA when present), cpu or cuda. [default: auto]"),
    ] = None,
    sample_level: Annotated[
        bool,
        Opt(
            "--sample-level",
            help="Also the sample-level metrics (h_samples, h_labels, mi_samples, mir_samples, hdr_samples, mi_samples_onehot) by exact structured routes, never N×N matrices.",
        ),
    ] = False,
    estimator: Annotated[
        Estimator,
        Opt(
            help="Sample-level joint entropies: auto (exact where a route fits, else SLQ), exact, or slq (stochastic Lanczos quadrature with a 95% interval)."
        ),
    ] = Estimator.auto,
    chunk_rows: Annotated[
        int | None, Opt(min=1, help="Rows per streamed chunk (default: about 32 MB of features).")
    ] = None,
    progress: Annotated[bool, Opt(help="Show a progress bar on stderr.")] = True,
) -> None:
    """Report how close a checkpoint's last layer is to Neural Collapse, with matrix-information metrics.

    Exit codes: 0 all checks passed, 1 a check or baseline comparison failed, 2 bad usage or bad input.
    """
    from nc_audit.audit import measure
    from nc_audit.progress import RichTracker
    from nc_audit.report.markdown import render_markdown

    settings = resolve_settings(
        fail_on,
        baseline,
        tolerance,
        output_format.value if output_format else None,
        device.value if device else None,
    )
    with RichTracker(enabled=progress) as tracker:
        report = measure(
            source,
            features=features,
            data=data,
            split=split,
            head=head,
            model=model,
            cache_dir=cache_dir or settings.cache_dir,
            device=settings.device,
            chunk_rows=chunk_rows,
            tracker=tracker,
            sample_level=sample_level,
            estimator=estimator.value,
        )
    report.checks = apply_gates(report.to_dict(), settings)
    result = report.to_dict()
    markdown = render_markdown(result)
    render(result, markdown, settings.output_format)
    write_outputs(result, markdown, json_path, markdown_path, junit_path, [result])
    if not report.passed:
        stderr.print(f"nc-audit: {sum(not c['passed'] for c in report.checks)} check(s) failed")
        raise typer.Exit(EXIT_CHECK_FAILED)


def render(data: dict, markdown: str, output_format: str) -> None:
    """Print the report on stdout in the chosen format."""
    if output_format == "json":
        from nc_audit.report.json_report import dumps_report

        print_stdout(dumps_report(data))
    elif output_format == "markdown":
        print_stdout(markdown)
    else:
        from nc_audit.report.console import render_report

        render_report(data)
