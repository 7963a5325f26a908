"""`make gpu-check`: every CUDA path of nc-audit in one run, the GPU beside the CPU (issue 15).

One table: the CUDA-marked tests (``pytest -m cuda``), then the benchmark rows timed on the CPU and on
``--device`` in the same run (streaming passes over a 1,000,000 × 512 float32 dump with peak host RSS and
peak GPU memory; a 500-checkpoint trajectory at C = 100 with cuSOLVER against MAGMA; exact sample-level
H/MI at N = 8,000 and 100,000; the CMA loss forward+backward), and the agreement of every metric between
the CPU and the device (≤ 1e-9 relative, float64). Rows: benchmarks/gpu_rows.py.

Made for a one-shot GPU session: it should finish in under 8 minutes (``--budget``); every row runs under
its own time limit and try, so one failing row still prints the others; the dump is scaled down when the
disk or the write speed would not allow 2 GB in time. Results are also written as Markdown (``--out``,
default benchmarks/GPU_RESULTS.md on a GPU) for the session to commit.

Without CUDA it says so in one line, runs the same rows on the CPU at ``--quick`` sizes (the "device"
column is then the CPU again) and exits 0 — which CI does (tests/benchmarks/test_gpu_check.py).

    python benchmarks/gpu_check.py [--quick | --full] [--device cuda:0] [--out PATH] [--budget S] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # the bench modules; nc_audit from this checkout

import gpu_rows  # noqa: E402
import torch  # noqa: E402
from bench_common import machine_info, seconds  # noqa: E402
from gpu_rows import CheckRow, Context  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from nc_audit.io.guards.atomic import atomic_write_text  # noqa: E402
from nc_audit.metrics.eigen_backend import backend_choices  # noqa: E402

DEFAULT_OUT = HERE / "GPU_RESULTS.md"
NO_CUDA = (
    "no CUDA device: ran every row on the CPU at {size} size (the device column is the CPU again); "
    "run `make gpu-check` on a machine with a GPU"
)


class RowTimeoutError(Exception):
    """A row ran past its time limit."""


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Small sizes (always, without CUDA).")
    parser.add_argument("--device", default="cuda", help="The device under test (default: cuda).")
    parser.add_argument(
        "--full", action="store_true", help="Full sizes even without CUDA (a slow dry run of the GPU sizes)."
    )
    parser.add_argument(
        "--out", type=Path, help="Markdown results (default on a GPU: benchmarks/GPU_RESULTS.md)."
    )
    parser.add_argument(
        "--budget", type=float, default=450.0, help="Seconds for the whole run (default 450)."
    )
    parser.add_argument("--data-dir", type=Path, help="Where the dumps are written (default: a temp dir).")
    return parser.parse_args(argv)


@contextmanager
def time_limit(seconds_: float) -> Iterator[None]:
    """Raise RowTimeoutError in the main thread after ``seconds_`` (SIGALRM; checked between Python calls)."""

    def expire(signum: int, frame: object) -> None:
        raise RowTimeoutError(f"ran past its {seconds_:.0f} s limit")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(1.0, seconds_))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_rows(ctx: Context, budget_s: float, started: float, err: Console) -> list[CheckRow]:
    """Every row function in turn, each within its share of the budget; a failure becomes its row's error."""
    rows: list[CheckRow] = []
    scale = 0.25 if ctx.quick else 1.0
    for index, (function, names, allotted, minimum) in enumerate(gpu_rows.ROWS):
        left = budget_s - (time.perf_counter() - started)
        later = sum(entry[3] for entry in gpu_rows.ROWS[index + 1 :])
        limit = min(allotted * scale if ctx.quick else allotted, left - later)
        if limit < minimum * scale:
            rows += [CheckRow(name, error=f"skipped: {left:.0f} s of the budget left") for name in names]
            continue
        err.print(f"[dim]{names[0]} (limit {limit:.0f} s) ...[/dim]")
        ctx.partial = []
        try:
            with time_limit(limit):
                rows += function(ctx, limit)
        except Exception as error:  # one failing row must not hide the others
            line = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:200]
            if ctx.partial:  # what the row measured before it failed stays in the table
                ctx.partial[-1].error = line
                rows += ctx.partial
            else:
                rows += [CheckRow(name, error=line) for name in names]
            err.print(f"[red]{names[0]}: {line}[/red]")
            traceback.print_exc(file=sys.stderr)
    return rows


def cells(row: CheckRow, device: str) -> list[str]:
    result = "ERROR" if row.error else {True: "MET", False: "MISSED", None: "—"}[row.met]
    return [
        row.name,
        seconds(row.cpu_s),
        seconds(row.device_s),
        "—" if row.ratio is None else f"{row.ratio:.3g}×",
        row.error or (row.details[0] if row.details else "—"),
        row.target or "—",
        result,
    ]


def columns(device: str) -> list[str]:
    return ["row", "CPU", device, f"CPU / {device}", "detail", "target", "result"]


def print_table(console: Console, rows: list[CheckRow], device: str, title: str) -> None:
    table = Table(title=title)
    for column in columns(device):
        table.add_column(column, overflow="fold")
    for row in rows:
        style = "bold red" if row.error or row.met is False else ("green" if row.met else None)
        table.add_row(*cells(row, device), style=style)
    console.print(table)
    for row in rows:
        for line in row.details if row.error else row.details[1:]:  # the first one is in the table
            console.print(f"  [dim]{row.name}[/dim] — {line}", highlight=False)


def markdown(rows: list[CheckRow], ctx: Context, note: str, wall_s: float) -> str:
    device = device_label(ctx)
    out = ["# nc-audit GPU check", "",
           f"Generated by `benchmarks/gpu_check.py` ({'quick' if ctx.quick else 'full'}; `make gpu-check`); "
           f"every number below was measured in this one run (wall time {wall_s:.0f} s). Do not edit by hand.", ""]  # fmt: skip
    if note:
        out += [f"**{note}**", ""]
    out += ["## Machine", "", "| | |", "|---|---|"]
    info = machine_info()
    info["torch CUDA"] = str(torch.version.cuda)
    out += [f"| {key} | {value} |" for key, value in info.items()]
    out += ["", "## Results", "", "| " + " | ".join(columns(device)) + " |", "|" + "---|" * 7]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in cells(row, device)) + " |" for row in rows]
    out += ["", "### Details", ""]
    out += [f"- {row.name} — {line}" for row in rows for line in row.details]
    out += ["", "## CUDA eigvalsh backend (nc_audit.metrics.eigen_backend)", ""]
    choices = backend_choices()
    out += [f"- {c['device']} C≤{c['size_bucket']} B≤{c['batch_bucket']}: {c['choice']} ({c['source']}; "
            f"{', '.join(f'{k} {v:.4f} s' for k, v in c['seconds'].items())})" for c in choices] or [
        "Not measured in this run (no CUDA device)."]  # fmt: skip
    return "\n".join(out) + "\n"


def device_label(ctx: Context) -> str:
    return str(ctx.device) if ctx.cuda else "cpu (no CUDA)"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.perf_counter()
    console = Console() if Console().is_terminal else Console(width=220)
    err = Console(stderr=True)
    cuda = torch.cuda.is_available() and args.device.startswith("cuda")
    device = torch.device(args.device if cuda else "cpu")
    quick = args.quick or not (cuda or args.full)
    note = "" if cuda else NO_CUDA.format(size="--quick" if quick else "full")
    if note:
        console.print(note, highlight=False)
    if not cuda and quick:  # a loaded CI machine: more OpenMP threads than free cores slow LAPACK down 100×
        torch.set_num_threads(1)
    if cuda:  # CUDA context and library handles before any timing
        torch.linalg.eigvalsh(torch.eye(8, device=device, dtype=torch.float64))
        torch.cuda.synchronize(device)
    with tempfile.TemporaryDirectory(prefix="nc-audit-gpu-check-", dir=args.data_dir) as folder:
        ctx = Context(device, quick, 1 if quick else 3, Path(folder))
        rows = run_rows(ctx, args.budget, started, err)
    wall_s = time.perf_counter() - started
    label = device_label(ctx)
    print_table(console, rows, label, f"nc-audit GPU check ({'quick' if quick else 'full'}; {wall_s:.0f} s)")
    out = args.out or (DEFAULT_OUT if cuda else None)
    if out is not None:
        atomic_write_text(out, markdown(rows, ctx, note, wall_s))
        console.print(f"wrote {out}")
    failed = [row.name for row in rows if row.error or (cuda and row.met is False)]
    console.print(
        f"rows failed or missed: {', '.join(failed)}" if failed else "every row ran", highlight=False
    )
    return 0 if not cuda else int(any(row.error for row in rows) or rows[0].met is False)


if __name__ == "__main__":
    sys.exit(main())
