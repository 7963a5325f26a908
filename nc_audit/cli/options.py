"""Options shared by several commands, declared once (help text a newcomer can act on)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nc_audit.cli.common import Device, Format

Opt = typer.Option

DataOpt = Annotated[
    str | None,
    Opt(
        "--data",
        "-d",
        help="Dataset to extract features from: digits, gaussian[:k=v,...], modadd[:k=v,...], or a .npz/.h5 "
        "file with inputs and labels. Cached by checkpoint sha256 + dataset.",
    ),
]
ModelOpt = Annotated[
    str | None,
    Opt(
        help="Architecture for a checkpoint that does not describe itself: MODULE:CALLABLE or file.py:CALLABLE "
        "(e.g. torchvision.models:resnet18, timm:create_model); num_classes/num_labels come from the checkpoint."
    ),
]
ModelArgOpt = Annotated[
    list[str] | None,
    Opt(
        "--model-arg",
        help="Argument of --model's callable, KEY=VALUE (VALUE read as JSON, else a string); repeatable, "
        "e.g. --model-arg model_name=resnet10t.",
    ),
]
MeansSplitOpt = Annotated[
    str | None,
    Opt(
        "--means-split",
        help="Split whose class means every metric uses; --split test --means-split test measures the "
        "held-out features' own geometry. [default: train when there is one (Papyan's protocol)]",
    ),
]
CacheDirOpt = Annotated[
    Path | None, Opt(help="Feature cache folder for --data (default: $NC_AUDIT_CACHE or ~/.cache/nc-audit).")
]
SplitOpt = Annotated[
    str | None,
    Opt(
        help="Split to measure (default: train, or the dump's root arrays). Other splits take the class means "
        "from train (NC4 on held-out data)."
    ),
]
HeadOpt = Annotated[
    str | None,
    Opt(help="State-dict name of the classifier head (NAME.weight / NAME.bias); default: detected."),
]
FormatOpt = Annotated[
    Format | None, Opt("--format", help="What to print on stdout: table, json or markdown. [default: table]")
]
JsonOpt = Annotated[Path | None, Opt("--json", help="Also write the JSON report to PATH (atomically).")]
MarkdownOpt = Annotated[Path | None, Opt("--markdown", help="Also write the Markdown summary to PATH.")]
JunitOpt = Annotated[
    Path | None, Opt("--junit", help="Also write JUnit XML to PATH: one test case per rule and checkpoint.")
]
FailOnOpt = Annotated[
    list[str] | None,
    Opt("--fail-on", help="Rule 'METRIC OP VALUE' (e.g. 'nc1<=0.5'); repeatable; exit 1 if any fails."),
]
BaselineOpt = Annotated[
    Path | None,
    Opt(
        help="Report or trajectory JSON to compare with: exit 1 if a metric moved away from its NC target by "
        "more than --tolerance."
    ),
]
ToleranceOpt = Annotated[
    float | None,
    Opt(help="Allowed increase of a metric's distance to its NC target vs --baseline. [default: 0]"),
]
DeviceOpt = Annotated[
    Device | None, Opt(help="Where the kernels run: auto (CUDA when present), cpu or cuda. [default: auto]")
]
ChunkRowsOpt = Annotated[
    int | None, Opt(min=1, help="Rows per streamed chunk (default: about 32 MB of features).")
]
ProgressOpt = Annotated[bool, Opt(help="Show a progress bar on stderr (only on a terminal).")]
