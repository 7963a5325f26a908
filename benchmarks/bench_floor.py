"""Rows: the common case at its floor (issue 23, deliverable 7) — a 200,000 × 512 float32 dump, C = 100.

nc-audit's ``measure`` in process (both passes and every class-level metric) against a straightforward
two-pass implementation of the reference NC library's formulation, re-implemented here (not imported):
pass 1 the class means, pass 2 the within-class scatter Σ_W, the classifier's and the nearest-class-mean
decisions, in float64 and in float32, reading the same dump in chunks with h5py. All three run in this
process, side by side, best of ``repeats``. A regression row times nc-audit's second pass on its float32
decision route against its own float64 route on the same means (their counts must be equal), and an
optional row runs the second pass at GPT-2's vocabulary (C = 50,257, d = 768) for time and peak RSS.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from bench_common import Limits, Row, best_of, measure_limits
from bench_streaming import generate_dump

from nc_audit.core.class_stats import ClassStats
from nc_audit.core.progress import SilentTracker
from nc_audit.engine.accumulators import WithinProjection
from nc_audit.engine.passes import accumulate_stats, count_decisions
from nc_audit.io.dumps.reader import read_head, resolve_split
from nc_audit.measurement.api import measure
from nc_audit.metrics.collapse import centred_means

#: Goals of issue 23 (deliverable 7): in process, against the reference's float64 and float32 passes.
GOAL_64, GOAL_32 = 10.0, 3.0
#: Regression guard: the float32 decision route must stay this much faster than the float64 route.
GOAL_ROUTE = 1.15
READ_ROWS = 16384


def reference_passes(path: Path, C: int, dtype: torch.dtype) -> tuple[int, int, float]:
    """The reference formulation in ``dtype``: pass 1 class means; pass 2 Σ_W = Σ (h − μ_y)(h − μ_y)ᵀ,
    the classifier's argmax and the nearest class mean (argmin of ‖h − μ_c‖², by cdist). Returns
    (classifier ≠ nearest-mean count, classifier-correct count, tr(Σ_W))."""
    with h5py.File(path, "r") as handle:
        features, labels = handle["features"], handle["labels"]
        W = torch.from_numpy(handle["head/weight"][...]).to(dtype)
        b = torch.from_numpy(handle["head/bias"][...]).to(dtype)
        N, d = features.shape
        sums, counts = torch.zeros(C, d, dtype=dtype), torch.zeros(C, dtype=dtype)
        for begin in range(0, N, READ_ROWS):
            H = torch.from_numpy(features[begin : begin + READ_ROWS]).to(dtype)
            y = torch.from_numpy(labels[begin : begin + READ_ROWS])
            sums.index_add_(0, y, H)
            counts.index_add_(0, y, torch.ones_like(y, dtype=dtype))
        means = sums / counts[:, None]
        scatter, mismatches, correct = torch.zeros(d, d, dtype=dtype), 0, 0
        for begin in range(0, N, READ_ROWS):
            H = torch.from_numpy(features[begin : begin + READ_ROWS]).to(dtype)
            y = torch.from_numpy(labels[begin : begin + READ_ROWS])
            D = H - means[y]
            scatter += D.T @ D
            predicted = (H @ W.T + b).argmax(1)
            nearest = torch.cdist(H, means).argmin(1)
            mismatches += int((predicted != nearest).sum())
            correct += int((predicted == y).sum())
    return mismatches, correct, float(torch.trace(scatter)) / N


def second_pass_timed(path: Path, stats: ClassStats, float32: bool, repeats: int) -> tuple[float, object]:
    info, head = resolve_split(path, None), read_head(path)

    def run() -> object:
        projection = WithinProjection(stats.class_means, centred_means(stats.subset(stats.present)))
        return count_decisions(
            info, stats, head, torch.device("cpu"), SilentTracker(), projection=projection, float32=float32
        )

    return best_of(repeats, run)


def cpu_seconds(path: Path, stats: ClassStats, float32: bool, repeats: int) -> float:
    """Fewest CPU seconds (this process, all threads) of the second pass over ``repeats`` runs: less
    sensitive than wall time to other processes on a shared machine."""
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = time.process_time()
        second_pass_timed(path, stats, float32, 1)
        best = min(best, time.process_time() - start)
    return best


def exact_floor_s(N: int, d: int, C: int, itemsize: int, limits: Limits) -> tuple[float, str]:
    """Seconds no exact measurement can beat on this machine, from the work counted and the rates measured
    in this run: both passes read the dump (bytes / read bandwidth), and pass 2 needs the decisions of
    both argmax problems (2·N·2C·d flops, float32 at best: NC4 equals the float64 decisions via the
    error bound) and NC1's projections onto r = C − 1 eigenvectors (2·N·r·d flops, float64: a statistic).
    Everything else (centring, bookkeeping, the class level) counts as free."""
    read_s = 2 * N * d * itemsize / limits.read_bytes_per_s
    decide_s = 2 * N * 2 * C * d / limits.gemm32_flops_per_s
    project_s = 2 * N * (C - 1) * d / limits.gemm64_flops_per_s
    parts = f"reading twice {read_s:.3f} s, decisions (float32) {decide_s:.3f} s, projections (float64) {project_s:.3f} s"
    return read_s + decide_s + project_s, parts


def run(path: Path, N: int, d: int, C: int, repeats: int, limits: Limits) -> list[Row]:
    measure(path)  # warm: page cache, lazy imports, thread pools
    measure_s, report = best_of(repeats, lambda: measure(path))
    ref64_s, ref64 = best_of(repeats, lambda: reference_passes(path, C, torch.float64))
    ref32_s, ref32 = best_of(repeats, lambda: reference_passes(path, C, torch.float32))
    nc4_ref = ref64[0] / N
    label = f"floor: measure in process, {N:,}×{d} float32, C = {C}"
    rows = []
    for name, ref_s, goal, ref in (
        ("float64", ref64_s, GOAL_64, ref64),
        ("float32", ref32_s, GOAL_32, ref32),
    ):
        row = Row(
            f"{label} vs reference {name} passes",
            measure_s,
            reference=f"reference 2 passes ({name})",
            reference_s=ref_s,
            ratio=ref_s / measure_s,
            difference=abs(report.metrics["nc4"] - ref[0] / N),
            target=f"≥ {goal:g}× (issue 23)",
            met=ref_s / measure_s >= goal,
        )
        rows.append(row)
    rows[0].extra["NC4"] = f"nc-audit {report.metrics['nc4']:.6f}, reference float64 {nc4_ref:.6f}"

    info = resolve_split(path, None)
    cpu = torch.device("cpu")
    pass1_s, stats = best_of(
        repeats, lambda: accumulate_stats(info, C, cpu, SilentTracker(), with_scatter=False)
    )
    fast_s, fast = second_pass_timed(path, stats, True, repeats)
    slow_s, slow = second_pass_timed(path, stats, False, repeats)
    same = [fast.counter.mismatches, fast.counter.classifier_correct, fast.counter.ncc_correct] == [  # type: ignore[attr-defined]
        slow.counter.mismatches,  # type: ignore[attr-defined]
        slow.counter.classifier_correct,  # type: ignore[attr-defined]
        slow.counter.ncc_correct,  # type: ignore[attr-defined]
    ]
    fast_cpu, slow_cpu = (cpu_seconds(path, stats, route, repeats) for route in (True, False))
    regression = Row(
        "floor regression: second pass, float32 decision route vs float64 route (CPU seconds)",
        fast_cpu,
        reference="float64 route",
        reference_s=slow_cpu,
        ratio=slow_cpu / fast_cpu,
        target=f"≥ {GOAL_ROUTE:g}× and equal decisions",
        met=same and slow_cpu / fast_cpu >= GOAL_ROUTE,
    )
    regression.extra["profile"] = (
        f"wall: pass 1 {pass1_s:.3f} s, pass 2 {fast_s:.3f} s (float64 route {slow_s:.3f} s), "
        f"measure {measure_s:.3f} s; "
        f"rows re-decided in float64 as near-ties: {int(fast.uncertain)} of {N}"  # type: ignore[attr-defined]
    )
    floor_s, floor_parts = exact_floor_s(N, d, C, 4, limits)
    for row in rows[:2]:
        row.floor_s = floor_s
    rows[1].extra["ceiling"] = (
        f"counted work at this run's measured rates ({floor_parts}): {floor_s:.3f} s, so an exact "
        f"measurement running at 100% of the GEMM and read peaks would reach {ref64_s / floor_s:.1f}× the "
        f"float64 passes and {ref32_s / floor_s:.1f}× the float32 ones; the goals need "
        f"{100 * GOAL_64 * floor_s / ref64_s:.0f}% and {100 * GOAL_32 * floor_s / ref32_s:.0f}% of those peaks "
        f"over the whole measure, nc-audit reaches {100 * floor_s / measure_s:.0f}%"
    )
    rows.append(regression)
    return rows


def vocabulary_row(data: Path, N: int = 200_000, d: int = 768, C: int = 50_257) -> Row:
    """Second pass at GPT-2's shapes (synthetic): time and peak RSS of this process (VmHWM)."""
    path = data / f"vocab_{N}_{d}_{C}.h5"
    if not path.exists():
        generate_dump(path, N, d, C)
    with h5py.File(path, "r+") as handle:  # a float32 head, as a language model's (float64: 309 MB)
        if handle["head/weight"].dtype != np.float32:
            weight = handle["head/weight"][...].astype(np.float32)
            del handle["head/weight"]
            handle["head/weight"] = weight
    info = resolve_split(path, None)
    cpu = torch.device("cpu")
    stats = accumulate_stats(info, C, cpu, SilentTracker(), with_scatter=False)
    start = time.perf_counter()
    second_pass_timed(path, stats, True, 1)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    row = Row(f"second pass at GPT-2 shapes, {N:,}×{d}, C = {C:,}", elapsed, target="bounded memory")
    row.extra["peak RSS"] = f"{peak / 1e9:.2f} GB (this process's high-water mark)"
    row.met = peak < 4e9
    return row


def floor_rows(
    data: Path, quick: bool, repeats: int, vocabulary: bool, limits: Limits, keep: bool = True
) -> list[Row]:
    """Generate the dump under ``data`` (reused when there; removed afterwards unless ``keep``, as
    ``bench.py`` does with every dump it generates) and measure the rows."""
    data.mkdir(parents=True, exist_ok=True)
    N, d, C = (20_000 if quick else 200_000), 512, 100
    path = data / f"floor_{N}_{d}_{C}.h5"
    generated = not path.exists()
    if generated:
        generate_dump(path, N, d, C)
    try:
        rows = run(path, N, d, C, repeats, limits)
    finally:
        if generated and not keep:
            path.unlink(missing_ok=True)
    if vocabulary:
        rows.append(vocabulary_row(data))
    return rows


if __name__ == "__main__":
    import argparse
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parent / "data")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--vocabulary", action="store_true", help="Also the C = 50,257, d = 768 row.")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}")
    limits = measure_limits(args.quick)
    for row in floor_rows(args.data_dir, args.quick, 1 if args.quick else 3, args.vocabulary, limits):
        ratio = "" if row.ratio is None else f" ratio {row.ratio:.2f}×"
        print(f"{row.name}: {row.ours_s:.3f} s{ratio} ref {row.reference_s} met {row.met} {row.extra}")
    print(np.__version__, f"load average {os.getloadavg()}")
