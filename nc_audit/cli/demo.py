"""`nc-audit demo ...`: self-contained demonstrations that train a small model and audit it.

The library (nc_audit.experiments.grokking) trains and measures; nc_audit.report.figures draws its document
and nc_audit.report.grokking_summary writes its summary; this module parses options and computes nothing.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from nc_audit.cli.common import Command, cli_errors, command_group, wrote
from nc_audit.cli.experiment_output import say
from nc_audit.cli.options import QuietOpt, TorchThreadsOpt

Opt = typer.Option

demo_app = command_group(
    "Self-contained demonstrations: train a small model, checkpoint it, audit the checkpoints."
)


class GrokModel(str, Enum):
    modmlp = "modmlp"
    transformer = "transformer"


#: --quick: a few seconds, for a first look and the tests.
QUICK = {"p": 23, "steps": 300, "save_every": 100}


@demo_app.command("grokking", no_args_is_help=True, cls=Command)
@cli_errors
def grokking_command(
    out: Annotated[
        Path,
        Opt(
            "--out",
            "-o",
            metavar="DIR",
            help="Folder for step_XXXXX.pt, trajectory.json, grokking.png, SUMMARY.md.",
        ),
    ],
    model: Annotated[
        GrokModel,
        Opt(
            metavar="[modmlp|transformer]",
            help="modmlp (embedding MLP) or transformer (one layer, Nanda et al.); sets the defaults below.",
        ),
    ] = GrokModel.modmlp,
    p: Annotated[
        int | None,
        Opt("--p", min=2, metavar="P", help="Modulus p of a+b mod p. [default: 97 modmlp, 59 transformer]"),
    ] = None,
    train_fraction: Annotated[
        float | None,
        Opt(
            min=0.0,
            max=1.0,
            metavar="FLOAT",
            help="Share of the p² pairs used for training; the rest is the test split. [default: 0.4]",
        ),
    ] = None,
    steps: Annotated[
        int | None,
        Opt(min=1, metavar="N", help="Full-batch AdamW steps. [default: 6000 modmlp, 14000 transformer]"),
    ] = None,
    save_every: Annotated[
        int | None,
        Opt(
            min=1,
            metavar="N",
            help="Write a checkpoint every this many steps (and at 0 and the end). "
            "[default: 100 modmlp, 200 transformer]",
        ),
    ] = None,
    seed: Annotated[
        int, Opt(min=0, metavar="N", help="Seed of the train/test split and of the initialisation.")
    ] = 0,
    d_model: Annotated[
        int | None,
        Opt(min=1, metavar="N", help="Transformer width (d_mlp = 4·d_model). [default: 64]"),
    ] = None,
    heads: Annotated[
        int | None, Opt(min=1, metavar="N", help="Transformer attention heads. [default: 4]")
    ] = None,
    weight_decay: Annotated[
        float | None, Opt(min=0.0, metavar="FLOAT", help="AdamW weight decay. [default: 1.0]")
    ] = None,
    quick: Annotated[bool, Opt("--quick", help="A few seconds: p = 23, 300 steps (unless given).")] = False,
    resume: Annotated[
        bool, Opt("--resume", help="Continue the run in --out from its last save (DIR/resume.state).")
    ] = False,
    thread_count: TorchThreadsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Grokking: train a model on modular addition, checkpoint it, track MIR/HDR on train and test features.

    Writes DIR/trajectory.json (both splits), DIR/grokking.png and DIR/SUMMARY.md, which states the
    steps where train and test accuracy first reach 0.99 and how much MIR/HDR moved around each.
    """
    from nc_audit.io.plan.outputs import plan_outputs

    names = ("trajectory.json", "grokking.png", "SUMMARY.md")
    plan_outputs({f"--out {out / name}": out / name for name in names})

    from nc_audit.cli.progress import make_tracker
    from nc_audit.core.threads import torch_threads
    from nc_audit.experiments.grokking import ModelShape, run_grokking
    from nc_audit.io.guards.atomic import atomic_write_text
    from nc_audit.report.figures import grokking_figure
    from nc_audit.report.grokking_summary import event_lines, grokking_page, timing_line
    from nc_audit.report.plots import save_figure
    from nc_audit.report.tables_markdown import page_text

    if quick:
        p, steps = p or QUICK["p"], steps or QUICK["steps"]
        save_every = save_every or QUICK["save_every"]
    with torch_threads(thread_count), make_tracker(quiet) as tracker:
        result = run_grokking(
            out,
            model=model.value,
            p=p,
            train_fraction=train_fraction,
            steps=steps,
            save_every=save_every,
            seed=seed,
            resume=resume,
            tracker=tracker,
            shape=ModelShape(d_model, heads),
            weight_decay=weight_decay,
        )
    plot_path, summary_path = out / "grokking.png", out / "SUMMARY.md"
    save_figure(grokking_figure(result.document), plot_path)
    atomic_write_text(summary_path, page_text(grokking_page(result.document)))
    for line in event_lines(result.document):
        say(line)
    say(("time: ", *timing_line(result.seconds)))
    wrote(f"{result.trajectory_path}, {plot_path}, {summary_path}")
