"""nc-audit benchmarks (`make bench`): every row measured in this run, on this machine.

Rows (see benchmarks/README.md): sample-level H/MI vs dense N×N eigvalsh; a 500-checkpoint class-level
trajectory vs a NumPy loop; the streaming passes over a 1,000,000 × 512 float32 dump vs raw h5py reading
(peak RSS of `measure` in a subprocess); each with its floor max(bytes / read bandwidth, flops / GEMM rate)
from limits measured in the same run. Prints a Rich table and writes benchmarks/RESULTS.md atomically.

    python benchmarks/bench.py [--quick] [--skip-large] [--out PATH] [--keep] [--threads N] [--dense-budget S]
                               [--only GROUP,...]

``--only floor,vocab`` runs those groups of rows alone (groups: sample, trajectory, streaming, floor, vocab, datasets)
and says so in the file it writes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__" and "--threads" in sys.argv:  # before NumPy/torch load their thread pools
    _value = sys.argv[sys.argv.index("--threads") + 1]
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[_name] = _value

import bench_datasets
import bench_floor
import bench_sample_level
import bench_streaming
import bench_trajectory
import bench_vocab
import torch
from bench_common import Limits, Row, machine_info, measure_limits, number, seconds, verdict
from rich.console import Console
from rich.table import Table

from nc_audit.io.guards.atomic import atomic_write_text
from nc_audit.metrics.eigen_backend import backend_choices

HERE = Path(__file__).resolve().parent
#: The groups of rows, in the order they run (--only picks some).
GROUPS = ("sample", "trajectory", "streaming", "floor", "vocab", "datasets")
COLUMNS = ("row", "nc-audit", "reference", "ratio", "max |diff|", "floor", "% of floor", "target", "result")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="Small sizes: a smoke run in well under a minute."
    )
    parser.add_argument("--skip-large", action="store_true", help="Skip N=20,000 and the 1,000,000-row dump.")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="Markdown results file.")
    parser.add_argument("--keep", action="store_true", help="Keep the generated dump (see --data-dir).")
    parser.add_argument(
        "--data-dir", type=Path, default=HERE / "data", help="Where the dump is generated (gitignored)."
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="Threads for torch, NumPy and the measure subprocess (default: the libraries' own); "
        "1 avoids OpenMP oversubscription on a loaded machine.",
    )
    parser.add_argument(
        "--floor-vocabulary",
        action="store_true",
        help="Also the second pass at GPT-2 shapes (C = 50,257, d = 768, N = 200,000; minutes).",
    )
    parser.add_argument(
        "--vocab-full", action="store_true", help="Also the GPT-2-shaped vocabulary row (C = 50,257; long)."
    )
    parser.add_argument(
        "--dense-budget", type=float, default=300.0, help="Skip a dense N×N run estimated above this (s)."
    )
    parser.add_argument(
        "--only",
        type=groups,
        default=GROUPS,
        metavar="GROUP,...",
        help=f"Run only these groups of rows ({', '.join(GROUPS)}).",
    )
    return parser.parse_args(argv)


def groups(text: str) -> tuple[str, ...]:
    """The row groups of --only, checked."""
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [part for part in chosen if part not in GROUPS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"expected some of {', '.join(GROUPS)}; got {text!r}")
    return chosen


def cells(row: Row) -> list[str]:
    fraction = row.floor_fraction
    return [
        row.name,
        seconds(row.ours_s),
        f"{row.reference}: {seconds(row.reference_s)}" if row.reference else "—",
        "—" if row.ratio is None else f"{row.ratio:.3g}×",
        number(row.difference, ".1e"),
        seconds(row.floor_s),
        "—" if fraction is None else f"{100 * fraction:.0f}%",
        row.target or "—",
        verdict(row.met),
    ]


def details(row: Row) -> list[str]:
    return [f"{key}: {value}" for key, value in row.extra.items()] + row.notes


def print_table(console: Console, rows: list[Row]) -> None:
    table = Table(title="nc-audit benchmarks (this run)", show_lines=False)
    for column in COLUMNS:
        table.add_column(column, overflow="fold")
    for row in rows:
        style = {True: "green", False: "bold red"}.get(row.met)  # type: ignore[call-overload]
        table.add_row(*cells(row), style=style)
    console.print(table)
    for row in rows:
        for line in details(row):
            console.print(f"  [dim]{row.name}[/dim] — {line}", markup=True, highlight=False)


def targets_summary(rows: list[Row]) -> list[str]:
    lines = [f"- **{verdict(row.met)}** {row.name}: {row.target}" for row in rows if row.met is not None]
    return lines or ["- no row had a target"]


def markdown(rows: list[Row], machine: dict[str, str], limits: Limits, mode: str, wall_s: float) -> str:
    out = ["# nc-audit benchmark results", "",
           f"Generated by `benchmarks/bench.py` ({mode}); every number below was measured in this one run "
           f"(wall time {wall_s:.0f} s). Do not edit by hand: run `make bench`.", "", "## Machine", "",
           "| | |", "|---|---|"]  # fmt: skip
    out += [f"| {key} | {value} |" for key, value in machine.items()]
    if contended(machine):
        out += ["", "**The machine was loaded (load average above the core count): absolute times are "
                "contended; compare the ratios, which were measured side by side.**"]  # fmt: skip
    out += ["", "## Limits measured in this run", "",
            f"- memory read bandwidth: {limits.read_bytes_per_s / 1e9:.1f} GB/s ({limits.read_how})",
            f"- GEMM float64: {limits.gemm64_flops_per_s / 1e9:.0f} GFLOP/s; float32: "
            f"{limits.gemm32_flops_per_s / 1e9:.0f} GFLOP/s", "",
            "Floor = max(bytes / read bandwidth, flops / GEMM rate); % of floor = floor / measured time.", "",
            "## Results", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]  # fmt: skip
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in cells(row)) + " |" for row in rows]
    out += ["", "### Details", ""]
    out += [f"- {row.name} — {line}" for row in rows for line in details(row)]
    out += ["", "## Targets", "", *targets_summary(rows), "", "## CUDA eigvalsh backend", ""]
    choices = backend_choices()
    if choices:
        out += [f"- {c['device']} C≤{c['size_bucket']} B≤{c['batch_bucket']}: {c['choice']} ({c['source']}; "
                f"{', '.join(f'{k} {v:.4f} s' for k, v in c['seconds'].items())})" for c in choices]  # fmt: skip
    else:
        out.append(
            "Not run: no CUDA device in this run (CPU path only; the cuSOLVER/MAGMA choice is untested here)."
        )
    return "\n".join(out) + "\n"


def contended(machine: dict[str, str]) -> bool:
    """Load average (1 min) above the usable cores at the start of the run."""
    try:
        return float(machine["load average at start"].split(",")[0]) > float(machine["cores"].split()[0])
    except (KeyError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    console = Console()
    if not console.is_terminal:  # a log or a pipe: wide enough for the table
        console = Console(width=220)
    err = Console(stderr=True)
    started = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = machine_info()
    repeats = 1 if args.quick else 3
    err.print("[dim]measuring read bandwidth and GEMM rates ...[/dim]")
    if contended(machine):
        hint = " (consider --threads 1)" if torch.get_num_threads() > 1 else ""
        err.print(f"[yellow]load average {machine['load average at start']} on {machine['cores']}: "
                  f"timings are contended{hint}[/yellow]")  # fmt: skip
    limits = measure_limits(args.quick)
    rows: list[Row] = []

    if "sample" in args.only:
        sizes = (250, 500, 1000) if args.quick else (2000, 8000, 20000)
        if args.skip_large:
            sizes = tuple(n for n in sizes if n <= 8000)
        err.print(f"[dim]sample level at N = {', '.join(map(str, sizes))} ...[/dim]")
        d = 64 if args.quick else 256
        rows += bench_sample_level.run(sizes, d, 10, limits, args.dense_budget, repeats)
        if args.skip_large and not args.quick:
            rows[-1].notes.append("N=20,000 skipped (--skip-large)")

    if "trajectory" in args.only:
        B = 50 if args.quick else 500
        err.print(f"[dim]trajectory of {B} checkpoints ...[/dim]")
        rows.append(bench_trajectory.run(B, 100, 128, limits, repeats))

    if "streaming" in args.only:
        N = 32768 if args.quick else (None if args.skip_large else 1_000_000)
        if N is None:
            rows.append(Row("streaming passes", None, notes=["skipped (--skip-large)"]))
        else:
            rows += streaming(N, args.data_dir, args.keep, limits, repeats, err)

    if "floor" in args.only:
        err.print("[dim]the common case at its floor (200,000 × 512, C = 100) ...[/dim]")
        rows += bench_floor.floor_rows(
            args.data_dir, args.quick, repeats, args.floor_vocabulary, limits, args.keep
        )
    if "vocab" in args.only:
        err.print("[dim]vocabulary-sized class sets ...[/dim]")
        rows += bench_vocab.run(limits, args.data_dir, args.vocab_full, args.quick)
    if "datasets" in args.only:
        err.print("[dim]an image folder streamed through a DataLoader (--workers 0 and 2) ...[/dim]")
        rows += bench_datasets.run(args.data_dir, args.quick)

    wall_s = time.perf_counter() - started
    print_table(console, rows)
    missed = [row.name for row in rows if row.met is False]
    console.print(f"targets missed: {', '.join(missed)}" if missed else "every target met", style="bold")
    mode = "quick" if args.quick else "full" + (", --skip-large" if args.skip_large else "")
    if args.only != GROUPS:
        mode += f", only the {', '.join(args.only)} rows (--only)"
    if args.threads:
        mode += f", --threads {args.threads}"
    atomic_write_text(args.out, markdown(rows, machine, limits, mode, wall_s))
    console.print(f"wrote {args.out} ({wall_s:.0f} s)")
    return 0


def streaming(N: int, data: Path, keep: bool, limits: Limits, repeats: int, err: Console) -> list[Row]:
    data.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="stream-", dir=data))
    path = folder / "features.h5"
    try:
        err.print(f"[dim]writing {N:,} × 512 float32 dump to {path} ...[/dim]")
        bench_streaming.generate_dump(path, N, 512, 10)
        err.print("[dim]streaming passes ...[/dim]")
        return bench_streaming.run(path, N, 512, 10, limits, repeats)
    finally:
        if keep:
            err.print(f"kept {path}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
