"""`nc-audit demo ...`: self-contained demonstrations that train a small model and audit it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nc_audit.cli.common import cli_errors, stderr

Opt = typer.Option

demo_app = typer.Typer(
    help="Self-contained demonstrations: train a small model, checkpoint it, audit the checkpoints.",
    no_args_is_help=True,
)


@demo_app.command("grokking", no_args_is_help=True)
@cli_errors
def grokking_command(
    out: Annotated[
        Path, Opt("--out", "-o", help="Folder for step_XXXXX.pt, trajectory.json, grokking.png, SUMMARY.md.")
    ],
    p: Annotated[int, Opt("--p", min=2, help="Modulus p of a+b mod p (p classes, p² pairs).")] = 97,
    train_fraction: Annotated[
        float,
        Opt(min=0.0, max=1.0, help="Share of the p² pairs used for training; the rest is the test split."),
    ] = 0.4,
    steps: Annotated[int, Opt(min=1, help="Full-batch AdamW steps.")] = 4000,
    save_every: Annotated[
        int, Opt(min=1, help="Write a checkpoint every this many steps (and at 0 and the end).")
    ] = 100,
    seed: Annotated[int, Opt(min=0, help="Seed of the train/test split and of the initialisation.")] = 0,
    progress: Annotated[bool, Opt(help="Show a progress bar on stderr.")] = True,
) -> None:
    """Grokking: train modmlp on modular addition, checkpoint it, track MIR/HDR on train and test features.

    Writes DIR/trajectory.json (both splits), DIR/grokking.png and DIR/SUMMARY.md, which states the
    steps where train and test accuracy first reach 0.99 and how much MIR/HDR moved around each.
    """
    from nc_audit.grokking import run_grokking
    from nc_audit.progress import RichTracker

    with RichTracker(enabled=progress) as tracker:
        result = run_grokking(
            out,
            p=p,
            train_fraction=train_fraction,
            steps=steps,
            save_every=save_every,
            seed=seed,
            tracker=tracker,
        )
    events, seconds = result.events, result.seconds
    for name in ("train", "test"):
        step = events[f"{name}_accuracy_step"]
        reached = f"at step {step}" if step is not None else f"never within {steps} steps"
        stderr.print(f"{name} accuracy ≥ {events['threshold']}: {reached}")
    stderr.print(
        f"time: training {seconds['train']:.1f} s, measurement {seconds['measure']:.1f} s, total {seconds['total']:.1f} s"
    )
    stderr.print(f"wrote {result.trajectory_path}, {result.plot_path}, {result.summary_path}")
