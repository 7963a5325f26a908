"""`nc-audit demo ...`: self-contained demonstrations that train a small model and audit it.

The library (nc_audit.experiments.grokking) trains and measures; nc_audit.report.figures draws its document;
this module writes the PNG and a Markdown summary, and computes nothing.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from nc_audit.cli.common import Command, cli_errors, command_group, stderr, wrote
from nc_audit.cli.options import QuietOpt
from nc_audit.io.guards.atomic import atomic_write_text
from nc_audit.report.numbers import fixed

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
    thread_count: Annotated[
        int | None,
        Opt(
            "--threads",
            min=1,
            metavar="N",
            help="Torch CPU threads; 1 is best on shared cores. [default: PyTorch's]",
        ),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Grokking: train a model on modular addition, checkpoint it, track MIR/HDR on train and test features.

    Writes DIR/trajectory.json (both splits), DIR/grokking.png and DIR/SUMMARY.md, which states the
    steps where train and test accuracy first reach 0.99 and how much MIR/HDR moved around each.
    """
    from nc_audit.io.plan.outputs import plan_outputs

    names = ("trajectory.json", "grokking.png", "SUMMARY.md")
    plan_outputs({f"--out {out / name}": out / name for name in names})

    import torch

    from nc_audit.cli.progress import make_tracker
    from nc_audit.experiments.grokking import ModelShape, run_grokking
    from nc_audit.report.figures import grokking_figure
    from nc_audit.report.plots import save_figure

    if quick:
        p, steps = p or QUICK["p"], steps or QUICK["steps"]
        save_every = save_every or QUICK["save_every"]
    before = torch.get_num_threads()
    torch.set_num_threads(thread_count or before)
    try:
        with make_tracker(quiet) as tracker:
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
    finally:
        torch.set_num_threads(before)
    plot_path, summary_path = out / "grokking.png", out / "SUMMARY.md"
    save_figure(grokking_figure(result.document), plot_path)
    atomic_write_text(summary_path, summary_markdown(result.document))
    events, seconds = result.events, result.seconds
    for name in ("train", "test"):
        step = events[f"{name}_accuracy_step"]
        within = result.document["config"]["steps"]
        reached = f"at step {step}" if step is not None else f"never within {within} steps"
        stderr.print(f"{name} accuracy ≥ {events['threshold']}: {reached}")
    stderr.print(
        f"time: training {seconds['train']:.1f} s, measurement {seconds['measure']:.1f} s, total {seconds['total']:.1f} s"
    )
    wrote(f"{result.trajectory_path}, {plot_path}, {summary_path}")


def _change_cell(change: dict[str, Any] | None) -> str:
    """A window change with the steps it spans."""
    if change is None:
        return "n/a (no event)"
    return f"{fixed(change['change'], undefined='n/a')} (steps {change['from_step']}–{change['to_step']})"


def _model_text(model: dict[str, Any]) -> str:
    """``transformer (d_model 64, heads 4, d_mlp 256)`` from the document's model entry."""
    settings = ", ".join(f"{key} {value}" for key, value in model.items() if key != "name")
    return f"{model.get('name', 'modmlp')} ({settings})"


def summary_markdown(document: dict[str, Any]) -> str:
    """SUMMARY.md: setup, the two event steps, the window changes and their comparison, timing."""
    config, ev, values = document["config"], document["events"], document["series"]
    optimizer = config.get("optimizer", {"lr": 1e-3, "weight_decay": 1.0, "betas": [0.9, 0.98]})
    best, threshold, window = ev["best_test_accuracy"], ev["threshold"], ev["window_checkpoints"]

    def event_line(name: str, step: int | None) -> str:
        if step is None:
            extra = f" (best {best['accuracy']:.4f} at step {best['step']})" if name == "test" else ""
            return f"- {name} accuracy: never reached ≥ {threshold} within {config['steps']} steps{extra}"
        accuracy = values[f"{name} accuracy"][document["steps"].index(step)]
        return f"- {name} accuracy first ≥ {threshold} at step **{step}** (measured {accuracy:.4f})"

    lines = [
        f"# Grokking on a+b mod {config['p']} (train fraction {config['train_fraction']}, seed {config['seed']})",
        "",
        f"{_model_text(config['model'])}; AdamW lr {optimizer['lr']:g}, "
        f"weight decay {optimizer['weight_decay']:g}, betas ({', '.join(f'{b:g}' for b in optimizer['betas'])}), full batch, {config['steps']} steps, a checkpoint every "
        f"{config['save_every']} steps ({len(document['steps'])} checkpoints), measured with nc-audit's "
        "measure_trajectory on the train and test splits.",
        "",
        event_line("train", ev["train_accuracy_step"]),
        event_line("test", ev["test_accuracy_step"]),
        "",
        f"Statistic: Σ_j |m(s_(j+1)) − m(s_j)| for j from i−{window} to i+{window}−1, the total variation of a metric over the "
        f"{window} checkpoints either side of the event's checkpoint i (clipped at the ends). MIR/HDR (train features): K_W vs the train class means; "
        "(test features): K_W vs the test features' own class means.",
        "",
        "| metric | change around train event | change around test event | larger around | median change over the run |",
        "|---|---|---|---|---|",
    ]
    for name, change in ev["changes"].items():
        larger = {"test": "test-accuracy jump", "train": "train-accuracy jump", None: "n/a"}[
            change["larger_around"]
        ]
        lines.append(
            f"| {name} | {_change_cell(change['around_train_event'])} | {_change_cell(change['around_test_event'])} | {larger} | {fixed(change['median_over_run'], undefined='n/a')} |"
        )
    answers = [
        f"{name} changed more around the {change['larger_around']}-accuracy jump"
        for name, change in ev["changes"].items()
        if change["larger_around"]
    ]
    lines += [
        "",
        "Answer: "
        + (
            "; ".join(answers) + "."
            if answers
            else "no comparison: test accuracy never reached the threshold."
        ),
    ]
    seconds = document.get("seconds", {})
    if seconds:
        lines += [
            "",
            f"Time: training {seconds['train']:.1f} s, measurement {seconds['measure']:.1f} s, total {seconds['total']:.1f} s.",
        ]
    return "\n".join(lines) + "\n"
