"""`nc-audit demo ...`: self-contained demonstrations that train a small model and audit it.

The library (nc_audit.experiments.grokking) trains and measures; this module renders its document as a PNG and a
Markdown summary, and computes nothing.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated, Any

import typer

from nc_audit.cli.common import cli_errors, stderr
from nc_audit.io.atomic import atomic_write_bytes, atomic_write_text
from nc_audit.report.numbers import fixed

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
    steps: Annotated[
        int, Opt(min=1, help="Full-batch AdamW steps (p = 97 at a 40% split groks at about step 5000).")
    ] = 6000,
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
    from nc_audit.cli.progress import RichTracker
    from nc_audit.experiments.grokking import run_grokking

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
    plot_path, summary_path = out / "grokking.png", out / "SUMMARY.md"
    plot_grokking(result.document, plot_path)
    atomic_write_text(summary_path, summary_markdown(result.document))
    events, seconds = result.events, result.seconds
    for name in ("train", "test"):
        step = events[f"{name}_accuracy_step"]
        reached = f"at step {step}" if step is not None else f"never within {steps} steps"
        stderr.print(f"{name} accuracy ≥ {events['threshold']}: {reached}")
    stderr.print(
        f"time: training {seconds['train']:.1f} s, measurement {seconds['measure']:.1f} s, total {seconds['total']:.1f} s"
    )
    stderr.print(f"wrote {result.trajectory_path}, {plot_path}, {summary_path}")


def _draw(ax: Any, x: list[int], lines: dict[str, list[Any]], target: float | None, marks: list[int]) -> None:
    """One panel: lines against step (symlog x), the NC target dashed, event steps dotted."""
    for name, values in lines.items():
        ax.plot(x, [float("nan") if v is None else v for v in values], marker="o", markersize=2, label=name)
    if target is not None:
        ax.axhline(target, linestyle="--", color="grey", linewidth=1, label="NC target")
    for step in marks:
        ax.axvline(step, linestyle=":", color="black", linewidth=1)
    ax.set_xscale("symlog", linthresh=max(1, x[1] if len(x) > 1 else 1))  # linear up to the first save
    ax.set_xlim(left=0)
    ax.set_xlabel("step (symlog)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def plot_grokking(document: dict[str, Any], path: Path) -> None:
    """2×2 PNG against step: accuracy, loss, MIR, HDR (train and test; NC targets dashed, events dotted)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x, values, history = document["steps"], document["series"], document["history"]
    targets = document["train"]["records"][0]["targets"]
    marks = [
        s
        for s in (document["events"]["train_accuracy_step"], document["events"]["test_accuracy_step"])
        if s is not None
    ]
    figure = Figure(figsize=(11, 7.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, 2).ravel()
    _draw(axes[0], x, {k: values[k] for k in ("train accuracy", "test accuracy")}, None, marks)
    _draw(axes[1], [h["step"] for h in history], {f"{s} loss": [h[f"{s}_loss"] for h in history] for s in ("train", "test")}, None, marks)  # fmt: skip
    axes[1].set_yscale("log")
    for ax, key in zip(axes[2:], ("mir", "hdr"), strict=True):
        _draw(ax, x, {k: v for k, v in values.items() if k.startswith(key + " ")}, targets.get(key), marks)
    for ax, title in zip(
        axes, ("accuracy (measured)", "cross-entropy (training loop)", "MIR", "HDR"), strict=True
    ):
        ax.set_title(title, fontsize="medium")
    config = document["config"]
    figure.suptitle(
        f"grokking: a+b mod {config['p']}, train fraction {config['train_fraction']}; dotted: accuracy ≥ {document['events']['threshold']} (train, test)"
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())


def _change_cell(change: dict[str, Any] | None) -> str:
    """A window change with the steps it spans."""
    if change is None:
        return "n/a (no event)"
    return f"{fixed(change['change'], undefined='n/a')} (steps {change['from_step']}–{change['to_step']})"


def summary_markdown(document: dict[str, Any]) -> str:
    """SUMMARY.md: setup, the two event steps, the window changes and their comparison, timing."""
    config, ev, values = document["config"], document["events"], document["series"]
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
        f"modmlp (embed_dim {config['model']['embed_dim']}, hidden {config['model']['hidden']}); AdamW lr 1e-3, "
        f"weight decay 1.0, betas (0.9, 0.98), full batch, {config['steps']} steps, a checkpoint every "
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
