"""Few-shot fine-tuning of the digits MLP with the CMA loss: test accuracy and NC metrics per λ and shot.

`make cma-experiment` runs this. For each number of samples per class (shots), each CMA weight λ and
each seed, the sample checkpoint is fine-tuned with L = (1 − λ)·CE + λ·CMA (anchors: the initial head
rows) on a seeded stratified subset of the digits train split, and measured on the full test split.
The seed picks the subset and the data order. Writes a Markdown table (mean ± sample std over seeds)
atomically. Uses the library in this process (no subprocesses), one thread: the model is tiny.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from nc_audit.core.errors import InputError
from nc_audit.io.guards.atomic import atomic_write_text
from nc_audit.train import FinetuneConfig, finetune

SAMPLE_GLOB = "sample_checkpoints/digits-mlp/*.pt"
METRICS = (("test_accuracy", "test accuracy"), ("nc1", "NC1"), ("mir", "MIR"), ("hdr", "HDR"))


def natural_key(path: Path) -> list[int | str]:
    """Sort key that orders epoch_2 before epoch_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def default_checkpoint(root: Path) -> Path:
    """The last sample checkpoint in natural order (the longest-trained one)."""
    found = sorted(root.glob(SAMPLE_GLOB), key=natural_key)
    if not found:
        raise InputError(
            f"no checkpoint matches {root / SAMPLE_GLOB}; run `make samples` or pass --checkpoint"
        )
    return found[-1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="default: last of " + SAMPLE_GLOB)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/CMA_RESULTS.md"))
    parser.add_argument("--shots", default="5,10", help="samples per class, comma-separated")
    parser.add_argument("--weights", default="0,0.05,0.1,0.2", help="CMA weights λ, comma-separated")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per (shot, λ)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--data", default="digits")
    return parser.parse_args(argv)


def run_grid(args: argparse.Namespace, checkpoint: Path) -> tuple[dict, dict]:
    """{(shot, λ): [after-record per seed]} and the epoch-0 record of the first run (before training)."""
    shots = [int(s) for s in args.shots.split(",")]
    weights = [float(w) for w in args.weights.split(",")]
    results: dict[tuple[int, float], list[dict]] = {}
    before: dict = {}
    total, done, started = len(shots) * len(weights) * args.seeds, 0, time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cma-experiment-") as scratch:
        for shot in shots:
            for weight in weights:
                for seed in range(args.seeds):
                    config = FinetuneConfig(
                        out=Path(scratch) / f"k{shot}_l{weight}_s{seed}",
                        cma_weight=weight,
                        checkpoint=checkpoint,
                        data=args.data,
                        epochs=args.epochs,
                        lr=args.lr,
                        batch_size=args.batch_size,
                        seed=seed,
                        train_samples_per_class=shot,
                        device="cpu",
                    )
                    result = finetune(config)
                    before = before or result.before
                    results.setdefault((shot, weight), []).append(result.after)
                    done += 1
                    print(
                        f"[{done}/{total}] shots={shot} λ={weight:g} seed={seed}: "
                        f"test accuracy {result.after['test_accuracy']:.4f} "
                        f"({time.monotonic() - started:.0f} s)",
                        flush=True,
                    )
    return results, before


def _mean_std(values: list[float | None]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "—"
    spread = statistics.stdev(present) if len(present) > 1 else 0.0
    return f"{statistics.fmean(present):.4f} ± {spread:.4f}"


def render_table(args: argparse.Namespace, checkpoint: Path, results: dict, before: dict) -> str:
    """The Markdown report: settings, the baseline, and one row per (shot, λ)."""
    lines = [
        "# CMA fine-tuning, few-shot digits",
        "",
        f"Checkpoint `{checkpoint}`, data `{args.data}`; {args.epochs} epochs of Adam (lr {args.lr:g}, "
        f"batch {args.batch_size}) on K samples per class; seeds 0..{args.seeds - 1} (subset and order). "
        "Loss (1 − λ)·CE + λ·CMA, anchors = the initial head rows.",
        f"Before fine-tuning: test accuracy {before.get('test_accuracy', float('nan')):.4f}.",
        "Test accuracy on the full test split; NC1, MIR, HDR on the K-shot train features after "
        "fine-tuning. Mean ± sample standard deviation over seeds.",
        "",
        "| shots/class | λ | " + " | ".join(label for _, label in METRICS) + " |",
        "|---:|---:|" + "---:|" * len(METRICS),
    ]
    for (shot, weight), records in sorted(results.items()):
        cells = [_mean_std([r.get(key) for r in records]) for key, _ in METRICS]
        lines.append(f"| {shot} | {weight:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)  # a 64-128-64-10 MLP: threads only add contention on shared cores
    try:
        checkpoint = args.checkpoint or default_checkpoint(Path())
        results, before = run_grid(args, checkpoint)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table = render_table(args, checkpoint, results, before)
        atomic_write_text(args.out, table)
    except InputError as error:
        print(f"cma_experiment: error: {error}", file=sys.stderr)
        return 2
    print(table)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
