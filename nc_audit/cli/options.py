"""Options shared by several commands, declared once (help text a newcomer can act on).

Every option names its value with a metavar (PATH, RULE, FLOAT, ...) and shows its default; options whose
default may come from ``[tool.nc-audit]`` are None here and state the built-in default in their help
(nc_audit.cli.project fills them in). A command declares a shared option as ``device: DeviceOpt = None``;
tests/cli/test_options_declared_once.py checks that every command with the option uses the one here.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from nc_audit.cli.common import Device
from nc_audit.cli.completion import complete_dataset, complete_rule

Opt = typer.Option

FORMAT_METAVAR = "[table|json|markdown]"
DEVICE_METAVAR = "[auto|cpu|cuda]"


class ClassRoute(str, Enum):
    """How the class-level Grams and pairs are computed (nc_audit.metrics.routes)."""

    auto = "auto"
    dense = "dense"
    factored = "factored"


class Gate(str, Enum):
    """Which checkpoints of a trajectory the rules and the baseline hold (nc_audit.gating.trajectory)."""

    last = "last"
    best = "best"
    all = "all"


DataOpt = Annotated[
    str | None,
    Opt(
        "--data",
        "-d",
        metavar="NAME|PATH",
        autocompletion=complete_dataset,
        help="Dataset to extract features from: digits, gaussian[:k=v,...], modadd[:k=v,...], or a .npz/.h5 "
        "file with inputs and labels. Cached by checkpoint sha256 + dataset.",
    ),
]


def data_option(purpose: str) -> Any:
    """The ``--data/-d NAME|PATH`` option with dataset completion; ``purpose`` starts its help. A command
    declares it ``Annotated[str, data_option(...)]`` (required) or ``Annotated[str | None, ...] = None``."""
    return Opt(
        "--data",
        "-d",
        metavar="NAME|PATH",
        autocompletion=complete_dataset,
        help=f"{purpose}: digits, gaussian[:k=v,...], modadd[:k=v,...], or a .npz/.h5 file with inputs "
        "and labels.",
    )


ModelOpt = Annotated[
    str | None,
    Opt(
        metavar="FACTORY",
        help="Architecture for a checkpoint that does not describe itself: MODULE:CALLABLE or file.py:CALLABLE "
        "(e.g. torchvision.models:resnet18, timm:create_model); num_classes/num_labels come from the checkpoint.",
    ),
]
ModelArgOpt = Annotated[
    list[str] | None,
    Opt(
        "--model-arg",
        metavar="KEY=VALUE",
        help="Argument of --model's callable, KEY=VALUE (VALUE read as JSON, else a string); repeatable, "
        "e.g. --model-arg model_name=resnet10t.",
    ),
]
DataArgOpt = Annotated[
    list[str] | None,
    Opt(
        "--data-arg",
        metavar="KEY=VALUE",
        help="Argument of a streamed --data, repeatable: an image folder's size=32 (or HxW), mean=0.5,0.5,0.5, "
        "std=..., channels=1|3; a table's max_length=128; a module:callable's keyword arguments (VALUE read "
        "as JSON, else a string).",
    ),
]
WorkersOpt = Annotated[
    int,
    Opt(
        "--workers",
        min=0,
        max=64,
        metavar="N",
        help="DataLoader worker processes that read and decode a streamed --data (image folder, table, "
        "callable); 0 reads in this process.",
    ),
]
LabelColumnOpt = Annotated[
    str | None,
    Opt(
        "--label-column",
        metavar="NAME",
        help="A datasets folder or .parquet/.jsonl table given as --data: the column of labels. [default: label]",
    ),
]
MeansSplitOpt = Annotated[
    str | None,
    Opt(
        "--means-split",
        metavar="NAME",
        help="Split whose class means every metric uses; --split test --means-split test measures the "
        "held-out features' own geometry. [default: train when there is one (Papyan's protocol)]",
    ),
]
LayersOpt = Annotated[
    str | None,
    Opt(
        "--layers",
        metavar="all|NAME,NAME",
        help="Collapse across depth: also measure the input of these modules (qualified names; all = every "
        "leaf module with parameters before the head, in forward order), pooled as the head's input, in the "
        "same forward pass; MIR/HDR against the head, or a least-squares probe where widths differ. Needs --data.",
    ),
]
CacheDirOpt = Annotated[
    Path | None,
    Opt(
        metavar="DIR",
        help="Feature cache folder for --data. [default: $NC_AUDIT_CACHE, else "
        "$XDG_CACHE_HOME/nc-audit, else ~/.cache/nc-audit]",
    ),
]
SplitOpt = Annotated[
    str | None,
    Opt(
        metavar="NAME",
        help="Split to measure; other splits than train take the class means from train (NC4 on "
        "held-out data). [default: train, or the dump's root arrays]",
    ),
]
HeadOpt = Annotated[
    str | None,
    Opt(
        metavar="NAME",
        help="State-dict name of the classifier head: a module (NAME.weight / NAME.bias) or a 2-D parameter the "
        "model applies with F.linear (NAME: a cosine head). [default: detected; refused when not certain]",
    ),
]


def _stdout_format(value: str | None) -> str | None:
    """--format NAME: one of the registry's stdout formats (report/formats/registry.py)."""
    from nc_audit.core.errors import InputError
    from nc_audit.report.formats.registry import stdout_format

    if value is not None:
        try:
            stdout_format(value)
        except InputError as error:
            raise typer.BadParameter(str(error)) from None
    return value


PoolOpt = Annotated[
    str | None,
    Opt(
        "--pool",
        metavar="last|first|mean",
        help="Pool a head's per-token input (N, T, d) over the non-pad tokens: last, first or mean. "
        "[default: as the model's forward pools it (decoder classifiers: the last non-pad token), else refused]",
    ),
]
FormatOpt = Annotated[
    str | None,
    Opt(
        "--format",
        metavar=FORMAT_METAVAR,
        help="What to print on stdout. [default: table]",
        callback=_stdout_format,
    ),
]
JsonOpt = Annotated[
    Path | None, Opt("--json", metavar="PATH", help="Also write the JSON report to PATH (atomically).")
]
MarkdownOpt = Annotated[
    Path | None, Opt("--markdown", metavar="PATH", help="Also write the Markdown summary to PATH.")
]
JunitOpt = Annotated[
    Path | None,
    Opt(
        "--junit", metavar="PATH", help="Also write JUnit XML to PATH: one test case per rule and checkpoint."
    ),
]
HtmlOpt = Annotated[
    Path | None,
    Opt("--html", metavar="PATH", help="Also write one self-contained HTML report (tables, plots) to PATH."),
]
FailOnOpt = Annotated[
    list[str] | None,
    Opt(
        "--fail-on",
        metavar="RULE",
        autocompletion=complete_rule,
        help="Rule 'METRIC OP VALUE' (e.g. 'nc1<=0.5'); repeatable; exit 1 if any fails.",
    ),
]
BaselineOpt = Annotated[
    Path | None,
    Opt(
        metavar="REPORT",
        help="Report or trajectory JSON to compare with: exit 1 if a metric moved away from its NC target "
        "by more than --tolerance.",
    ),
]
ToleranceOpt = Annotated[
    float | None,
    Opt(
        metavar="FLOAT",
        help="Allowed increase of a metric's distance to its NC target vs --baseline. [default: 0]",
    ),
]
DeviceOpt = Annotated[
    Device | None,
    Opt(metavar=DEVICE_METAVAR, help="Where the kernels run (auto: CUDA when present). [default: auto]"),
]
PageMarkdownOpt = Annotated[
    Path | None,
    Opt("--markdown", metavar="PATH", help="Where to write the Markdown page. [default: --out/RESULTS.md]"),
]
ThreadsOpt = Annotated[
    int,
    Opt(
        "--threads",
        min=1,
        metavar="N",
        help="Torch CPU threads; on shared cores more threads spin-wait.",
    ),
]
StudyOutOpt = Annotated[
    Path,
    Opt(
        "--out", "-o", metavar="DIR", help="Study folder: study.json, runs.jsonl, results.json, checkpoints."
    ),
]
StudyResumeOpt = Annotated[
    bool, Opt("--resume", help="Continue the study in --out: finished runs are read back, the rest run.")
]
StudyQuickOpt = Annotated[
    bool, Opt("--quick", help="A few seconds: fewer runs, a smaller model, a short schedule.")
]
StudySeedsOpt = Annotated[
    int | None,
    Opt("--seeds", min=1, metavar="N", help="Seeds 0..N-1 per setting. [default: 3; --quick: 1]"),
]
StudyPlotOpt = Annotated[
    Path | None, Opt("--plot", metavar="PATH", help="Where to write the PNG. [default: in --out]")
]
TorchThreadsOpt = Annotated[
    int | None,
    Opt(
        "--threads",
        min=1,
        metavar="N",
        help="Torch CPU threads; 1 is best on shared cores. [default: PyTorch's]",
    ),
]
ChunkRowsOpt = Annotated[
    int | None,
    Opt(min=1, metavar="ROWS", help="Rows per streamed chunk. [default: about 32 MB of features]"),
]
DecisionSamplesOpt = Annotated[
    int | None,
    Opt(
        min=1,
        metavar="N",
        help="Count NC4 and accuracy on a seeded random subset of N rows (seed 0, named in the report's conventions); NC1 and every other statistic use all rows. [default: all rows]",
    ),
]
QuietOpt = Annotated[
    bool,
    Opt(
        "--quiet",
        "-q",
        "--no-progress",
        help="No progress on stderr (a bar on a terminal, else a line every few seconds).",
    ),
]
GateOpt = Annotated[
    Gate,
    Opt(
        metavar="[last|best|all]",
        help="Checkpoints the rules and --baseline hold: the last one, the best (highest accuracy), or all.",
    ),
]
AllowExternalOpt = Annotated[
    bool,
    Opt(
        "--allow-external-data",
        help="Let a dump read data from other files: HDF5 external links, external raw storage and "
        "virtual-dataset sources (refused by default: a dump is read only from its own file). Only for "
        "trusted multi-file dumps.",
    ),
]


class Task(str, Enum):
    """What a model's --data is measured as (nc_audit.models.next_token for next-token)."""

    classification = "classification"
    next_token = "next-token"


TaskOpt = Annotated[
    Task,
    Opt(
        metavar="[classification|next-token]",
        help="next-token: the checkpoint is a causal language model folder and --data a corpus (.txt, "
        ".jsonl, or token ids .npy); labels are next tokens, the head the unembedding.",
    ),
]
ContextOpt = Annotated[
    int | None,
    Opt(
        min=2,
        metavar="N",
        help="--task next-token: tokens per window (one forward pass). [default: the model's longest "
        "sequence, at most 1024]",
    ),
]
TextColumnOpt = Annotated[
    str,
    Opt(
        metavar="NAME",
        help="--task next-token with a .jsonl corpus, or a datasets folder / .parquet / .jsonl table as --data: "
        "the column holding each text.",
    ),
]
ClassRouteOpt = Annotated[
    ClassRoute,
    Opt(
        "--class-route",
        metavar="[auto|dense|factored]",
        help="Class-level Grams and pairs: dense C x C matrices, factored (d x d and Kronecker Grams, SLQ with "
        "a 95% interval when d^2 > C, tiled pairs; never a C x C matrix), or auto (dense for small C, "
        "factored above a memory budget). The report names the route.",
    ),
]
MinClassSamplesOpt = Annotated[
    int,
    Opt(
        "--min-class-samples",
        min=1,
        metavar="K",
        help="Measure only the classes with at least K samples (head rows and samples of the other classes "
        "are left out; the report says how many). Classes without samples are always left out.",
    ),
]
