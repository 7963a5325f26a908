"""Rows: vocabulary-sized class sets (issue 23) — whole `measure` with the class-level routes of
nc_audit.metrics.routes, the dense route beside it (measured where it fits, estimated where not), and the
linguistic-collapse anchor's tiled CDNV / ETF-error approach on the same class statistics.

Sizes: C = 5,000, d = 256, N = 100,000 (goal ≤ 10 s, ≤ 1 GB); C = 20,000, d = 32, N = 60,000 (goal ≤ 19 s,
≤ 2 GB); with ``--vocab-full`` also C = 50,257, d = 768, N = 200,000 (GPT-2 shapes; goal ≤ 10 min, ≤ 4 GB,
MI's SLQ half-width ≤ 0.5 % of MI). The anchor's approach is re-implemented here from its published
formulas (a C×C float32 grid filled tile by tile with broadcast differences, then an upper-triangle
reduction; the ETF error from the C×C Gram of the centred means), not imported.

Run alone: ``python benchmarks/bench_vocab.py [--vocab-full] [--quick]`` (prints the rows).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import torch
from bench_common import Limits, Row, best_of, measure_limits
from bench_streaming import HDF5_CHUNK_ROWS

from nc_audit.core.class_stats import ClassStats
from nc_audit.metrics.collapse import centred_means
from nc_audit.metrics.routes import dense_bytes, plan_routes
from nc_audit.metrics.tiled import tiled_angles, tiled_cdnv

HERE = Path(__file__).resolve().parent
#: (C, d, N, goal seconds, goal bytes) per size.
SIZES = [(5_000, 256, 100_000, 10.0, 2**30), (20_000, 32, 60_000, 19.0, 2 * 2**30)]
GPT2 = (50_257, 768, 200_000, 600.0, 4 * 2**30)
#: The anchor's CDNV tile (the issue's side-by-side run used 1024).
ANCHOR_TILE = 1024


def generate_dump(path: Path, N: int, d: int, C: int, seed: int = 0, block: int = 32768) -> None:
    """Zipf-like labels over C classes (every class present), features around the class centres, a head."""
    rng = np.random.default_rng(seed)
    centres = (3.0 * rng.standard_normal((C, d)) / math.sqrt(d) * 4).astype(np.float32)
    weights = 1.0 / np.arange(1, C + 1) ** 0.8
    with h5py.File(path, "w") as handle:
        rows = min(HDF5_CHUNK_ROWS, N)
        features = handle.create_dataset("features", (N, d), "float32", chunks=(rows, d))
        labels = handle.create_dataset("labels", (N,), "int64", chunks=(rows,))
        for begin in range(0, N, block):
            n = min(block, N - begin)
            y = rng.choice(C, size=n, p=weights / weights.sum())
            if begin == 0:
                y[: min(C, n)] = np.arange(min(C, n))  # every class present
            features[begin : begin + n] = centres[y] + rng.standard_normal((n, d), dtype=np.float32)
            labels[begin : begin + n] = y
        # float32 like a real unembedding (a float64 GPT-2 head would pass the 256 MiB head-read limit)
        handle["head/weight"] = (centres + 0.3 * rng.standard_normal((C, d)) / math.sqrt(d)).astype(
            np.float32
        )
        handle["head/bias"] = rng.standard_normal(C)


MEASURE_SCRIPT = """
import json, sys, time
start = time.perf_counter()
from nc_audit.measurement.api import measure
imported = time.perf_counter()
report = measure(sys.argv[1], device="cpu", class_route=sys.argv[2])
elapsed = time.perf_counter() - imported
hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(json.dumps({"import_s": imported - start, "measure_s": elapsed, "metrics": report.metrics,
                  "class_level": report.details.get("class_level"), "vm_hwm_kib": int(hwm[0])}))
"""


def measure_in_subprocess(path: Path, route: str) -> tuple[dict, int]:
    """(timings, metrics and class-level details; the child's peak RSS in bytes, its VmHWM) of
    ``measure(path, class_route=route)`` in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE_SCRIPT, str(path), route], capture_output=True, text=True, check=True
    )
    timings = json.loads(done.stdout.strip().splitlines()[-1])
    return timings, timings["vm_hwm_kib"] * 1024


def class_stats(path: Path, C: int) -> ClassStats:
    """ClassStats (no scatter) of a dump, read whole (the benchmark's sizes fit)."""
    with h5py.File(path, "r") as handle:
        H = torch.from_numpy(handle["features"][:])
        y = torch.from_numpy(handle["labels"][:])
    return ClassStats.from_batch(H, y, C, with_scatter=False)


def anchor_cdnv_etf(M: torch.Tensor, variances: torch.Tensor, tile: int) -> tuple[float, float]:
    """The linguistic-collapse approach, re-implemented: CDNV as a C×C float32 grid filled tile by tile
    with broadcast differences, reduced over the upper triangle; ETF error as the Frobenius norm of the
    normalised centred-means Gram minus the simplex ETF Gram. Returns (CDNV, ETF error)."""
    M32, v32 = M.to(torch.float32), variances.to(torch.float32)
    C = M32.shape[0]
    grid = torch.zeros(C, C, dtype=torch.float32)
    for i in range(0, C, tile):
        for j in range(0, C, tile):
            diff = M32[i : i + tile, None, :] - M32[None, j : j + tile, :]  # (t, t, d)
            grid[i : i + tile, j : j + tile] = ((v32[i : i + tile, None] + v32[None, j : j + tile]) / 2) / (
                diff * diff
            ).sum(-1)
    rows, cols = torch.triu_indices(C, C, 1)
    cdnv = float(grid[rows, cols].double().mean())
    del grid, rows, cols
    struct = M32 @ M32.T
    struct /= torch.linalg.matrix_norm(struct)
    struct += 1 / C / math.sqrt(C - 1)
    struct.diagonal().sub_(1 / math.sqrt(C - 1))
    return cdnv, float(torch.linalg.matrix_norm(struct))


def size_rows(C: int, d: int, N: int, goal_s: float, goal_bytes: int, data: Path, anchor: bool) -> list[Row]:
    """The rows of one size: whole measure (auto routes) with the dense route beside it, and the anchor."""
    folder = Path(tempfile.mkdtemp(prefix="vocab-", dir=data))
    try:
        path = folder / "features.h5"
        generate_dump(path, N, d, C)
        timings, peak = measure_in_subprocess(path, "auto")
        routes = plan_routes(C, d)
        metrics = timings["metrics"]
        stats = class_stats(path, C)
        M = centred_means(stats)
        dense_needed = dense_bytes(C)
        dense_s: float | None = None
        if dense_needed <= 4 * 2**30:
            dense, dense_peak = measure_in_subprocess(path, "dense")
            dense_s = dense["measure_s"]
            mi_gap = abs(dense["metrics"]["mi"] - metrics["mi"])
            dense_text = (
                f"--class-route dense (measured): {dense_s:.1f} s, peak {dense_peak / 2**30:.2f} GiB; "
                f"|MI auto − MI dense| = {mi_gap:.2e}"
            )
        else:
            estimate = 3 * (C / 5000) ** 3 * 10.0  # ≈ 10 s per 5,000² eigvalsh on 2 cores, cubic
            dense_text = (
                f"--class-route dense not run: ≈ {dense_needed / 2**30:.0f} GiB of C×C matrices, "
                f"≈ {estimate:.0f} s of eigvalsh (estimate)"
            )
        ours = timings["measure_s"]
        level = timings.get("class_level") or {}
        interval = (level.get("interval_95") or {}).get("mi")
        slq = level.get("slq") or {}
        extra = {
            "peak RSS": f"{peak / 2**30:.2f} GiB",
            "routes": json.dumps(level.get("routes")),
            "MI": f"{metrics.get('mi')}"
            + (
                f" ± {interval:.2g} ({slq.get('probes')} probes × ≤ {slq.get('lanczos_steps')} Lanczos steps)"
                if interval
                else ""
            ),
        }
        met = ours <= goal_s and peak <= goal_bytes
        if interval is not None and metrics.get("mi"):
            extra["MI half-width / MI"] = f"{interval / abs(metrics['mi']):.2%}"
            met = met and interval <= 0.005 * abs(metrics["mi"])
        row = Row(
            f"vocab C={C:,} d={d} N={N:,}: measure",
            ours,
            reference="measure --class-route dense" if dense_s is not None else "",
            reference_s=dense_s,
            ratio=None if dense_s is None else dense_s / ours,
            target=f"≤ {goal_s:g} s, ≤ {goal_bytes / 2**30:g} GB",
            met=met,
            extra=extra,
            notes=[
                dense_text,
                f"import {timings['import_s']:.1f} s (not counted)",
                "load average (1, 5, 15 min) after the row: "
                + ", ".join(f"{x:.1f}" for x in os.getloadavg()),
            ],
        )
        rows = [row]
        if anchor:
            rows.append(anchor_row(C, d, M, stats.class_variances, routes.tile or ANCHOR_TILE))
        return rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def anchor_row(C: int, d: int, M: torch.Tensor, variances: torch.Tensor, tile: int) -> Row:
    """Our tiled CDNV + NC2 angles vs the anchor's tiled CDNV grid + ETF error, same class statistics."""
    ours_s, ours = best_of(1, lambda: (tiled_cdnv(M, variances, tile), tiled_angles(M, tile)))
    anchor_s, anchor = best_of(1, lambda: anchor_cdnv_etf(M, variances, ANCHOR_TILE))
    return Row(
        f"vocab C={C:,} d={d}: tiled CDNV + NC2 angles",
        ours_s,
        reference=f"linguistic-collapse tiled CDNV (tile {ANCHOR_TILE}) + ETF error",
        reference_s=anchor_s,
        ratio=anchor_s / ours_s,
        difference=abs(ours[0] - anchor[0]) / abs(ours[0]),
        notes=[
            f"CDNV ours {ours[0]:.6g} (float64, exact over pairs) vs anchor {anchor[0]:.6g} (float32); "
            f"anchor ETF error {anchor[1]:.4g}; ours holds no C×C matrix, the anchor two"
        ],
    )


def run(limits: Limits, data: Path, full: bool = False, quick: bool = False) -> list[Row]:
    """Every vocabulary row (the GPT-2 shapes only with ``full``)."""
    del limits  # the rows are whole-command times; no floor
    data.mkdir(parents=True, exist_ok=True)
    sizes = [(500, 64, 10_000, 10.0, 2**30)] if quick else list(SIZES)
    if full:
        sizes.append(GPT2)
    rows: list[Row] = []
    for C, d, N, goal_s, goal_bytes in sizes:
        rows += size_rows(C, d, N, goal_s, goal_bytes, data, anchor=quick or C == 20_000)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--vocab-full", action="store_true", help="Also the GPT-2 shapes (C = 50,257, d = 768)."
    )
    parser.add_argument("--quick", action="store_true", help="One small size (a smoke run).")
    parser.add_argument("--data-dir", type=Path, default=HERE / "data", help="Where dumps are generated.")
    args = parser.parse_args(argv)
    for row in run(measure_limits(True), args.data_dir, args.vocab_full, args.quick):
        ratio = "—" if row.ratio is None else f"{row.ratio:.3g}×"
        reference = f"{row.reference} {row.reference_s:.2f} s" if row.reference_s is not None else "—"
        print(f"{row.name}: {row.ours_s:.2f} s | {reference} | ratio {ratio} | target {row.target or '—'} "
              f"| met {row.met}")  # fmt: skip
        for key, value in row.extra.items():
            print(f"    {key}: {value}")
        for note in row.notes:
            print(f"    {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
