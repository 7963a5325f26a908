"""Row: a generated ImageFolder (20,000 PNGs, 32 × 32 RGB; --quick 2,000) measured through a small CNN
factory by the real CLI (``nc-audit measure --data FOLDER --data-arg size=32``), once with ``--workers 0``
and once with ``--workers 2``, each with an empty feature cache, in this run.

The peak memory is that of the whole process tree (the CLI and its DataLoader workers): the sum of
their PSS (proportional set size: pages the forked workers share with the CLI counted once), sampled
every 100 ms with psutil; the target is < 1 GB, and ``--workers 2`` faster than ``--workers 0``. The load
average (``uptime``) before and after is recorded: on a loaded machine the workers compete for cores.

    python benchmarks/bench_datasets.py [--quick] [--images N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from bench_common import Row

TARGET_RSS = 1e9
CLASSES, SIDE = 10, 32
CNN = """
from torch import nn


def small_cnn(num_classes=10):
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, num_classes),
    )
"""


def generate(root: Path, images: int, seed: int = 0) -> tuple[Path, Path, str]:
    """(image folder, checkpoint, --model spec): ``images`` PNGs over CLASSES class folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = root / "images"
    for index in range(images):
        label = index % CLASSES
        target = folder / f"class_{label:02d}"
        target.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8) // 2 + 12 * label
        Image.fromarray(pixels.astype(np.uint8)).save(target / f"{index:06d}.png", compress_level=1)
    (root / "cnn_zoo.py").write_text(CNN)
    namespace: dict[str, object] = {}
    exec(compile(CNN, "cnn_zoo.py", "exec"), namespace)  # the benchmark's own source
    torch.manual_seed(0)
    checkpoint = root / "cnn.pt"
    torch.save(namespace["small_cnn"]().state_dict(), checkpoint)  # type: ignore[operator]
    return folder, checkpoint, f"{root / 'cnn_zoo.py'}:small_cnn"


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_full_info().pss  # shared pages counted once
        except psutil.Error:
            continue
    return total


def run_measure(folder: Path, checkpoint: Path, factory: str, workers: int, cache: Path) -> tuple[float, int]:
    """(wall seconds, peak summed RSS in bytes) of one ``nc-audit measure`` with an empty cache."""
    shutil.rmtree(cache, ignore_errors=True)
    command = [sys.executable, "-m", "nc_audit", "measure", str(checkpoint), "--model", factory,
               "--data", str(folder), "--data-arg", "size=32", "--data-arg", "mean=0.5", "--data-arg", "std=0.25",
               "--workers", str(workers), "--cache-dir", str(cache), "--no-progress", "--format", "json"]  # fmt: skip
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    process, peak, done = psutil.Process(child.pid), 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                peak = max(peak, _tree_rss(process))
            except psutil.Error:
                pass
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = child.communicate()
    done.set()
    sampler.join()
    elapsed = time.perf_counter() - started
    if child.returncode != 0:
        raise RuntimeError(
            f"measure --workers {workers} failed ({child.returncode}): {stderr.decode()[-500:]}"
        )
    return elapsed, peak


def uptime() -> str:
    load = os.getloadavg()
    return f"{load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}"


def run(data_dir: Path, quick: bool, images: int | None = None) -> list[Row]:
    count = images or (2_000 if quick else 20_000)
    data_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="images-", dir=data_dir))
    try:
        started = time.perf_counter()
        folder, checkpoint, factory = generate(root, count)
        generated_s = time.perf_counter() - started
        load_before = uptime()
        serial_s, serial_rss = run_measure(folder, checkpoint, factory, 0, root / "cache")
        parallel_s, parallel_rss = run_measure(folder, checkpoint, factory, 2, root / "cache")
        load_after = uptime()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    peak = max(serial_rss, parallel_rss)
    row = Row(
        f"image folder {count:,} × {SIDE}×{SIDE} PNG, small CNN, --workers 2",
        parallel_s,
        reference="--workers 0",
        reference_s=serial_s,
        ratio=serial_s / parallel_s,
        target="peak memory < 1 GB, --workers 2 faster than --workers 0",
        met=peak < TARGET_RSS and parallel_s < serial_s,
    )
    row.extra["peak memory (process tree, summed PSS)"] = (
        f"--workers 0: {serial_rss / 1e6:.0f} MB; --workers 2: {parallel_rss / 1e6:.0f} MB"
    )
    row.extra["load average (uptime) before / after"] = (
        f"{load_before} / {load_after} on {os.cpu_count()} cores"
    )
    row.extra["images generated in"] = f"{generated_s:.1f} s"
    return [row]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--images", type=int)
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parent / "data")
    args = parser.parse_args()
    for result in run(args.data_dir, args.quick, args.images):
        print(result.name, f"workers2 {result.ours_s:.2f} s", f"workers0 {result.reference_s:.2f} s",
              f"ratio {result.ratio:.2f}", f"met {result.met}", *(f"{k}: {v}" for k, v in result.extra.items()),
              sep="\n  ")  # fmt: skip
